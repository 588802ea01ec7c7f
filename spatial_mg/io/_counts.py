"""Validation of raw count matrices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def check_counts(x, where: str) -> sp.csr_matrix:
    """Return ``x`` as CSR int32 raw counts, or raise naming ``where`` and the problem.

    Counts must be finite, non-negative and integer-valued: a matrix that is not is
    usually already normalised, and a count model would silently fit the wrong thing.
    """
    x = sp.csr_matrix(x)
    values = x.data
    if not np.all(np.isfinite(values)):
        raise ValueError(f"Counts in {where} contain NaN or inf; pass raw counts from spaceranger.")
    if values.size and values.min() < 0:
        raise ValueError(f"Counts in {where} are negative (min {values.min()}); pass raw, unnormalised counts.")
    if not np.array_equal(values, np.round(values)):
        raise ValueError(
            f"Counts in {where} are not integers; they look normalised. Pass raw counts "
            "(for example the filtered_feature_bc_matrix.h5 of spaceranger)."
        )
    if values.size and values.max() > np.iinfo(np.int32).max:
        raise ValueError(f"Counts in {where} exceed the int32 range.")
    out = x.astype(np.int32)
    out.eliminate_zeros()
    return out
