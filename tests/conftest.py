"""Shared fixtures: paths to the real test data in tests/data (see PROVENANCE.md there)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def imzml_continuous() -> Path:
    return DATA / "imzml_example" / "Example_Continuous.imzML"


@pytest.fixture
def imzml_processed() -> Path:
    return DATA / "imzml_example" / "Example_Processed.imzML"


@pytest.fixture
def visium_dir() -> Path:
    return DATA / "visium_squidpy_test"


@pytest.fixture
def visium_copy(tmp_path, visium_dir) -> Path:
    """A writable copy of the real Visium subset, for tests that break it."""
    dest = tmp_path / "outs"
    shutil.copytree(visium_dir, dest)
    return dest


# --- one registration per input, for tests that are about what happens around it ----------------
def _feed(h, obj) -> None:
    """Feed ``obj``'s content (arrays, frames, AnnData, nested dicts and lists) into the hash ``h``."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    h.update(type(obj).__name__.encode())
    if isinstance(obj, ad.AnnData):
        for part in (obj.X, obj.obs, obj.var, dict(obj.obsm), dict(obj.varm), dict(obj.obsp), dict(obj.varp),
                     dict(obj.layers), dict(obj.uns)):
            _feed(h, part)
    elif sp.issparse(obj):
        obj = sp.csr_matrix(obj)
        for part in (np.asarray(obj.shape), obj.data, obj.indices, obj.indptr):
            _feed(h, part)
    elif isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, pd.DataFrame):
        _feed(h, [str(c) for c in obj.columns])
        _feed(h, [str(t) for t in obj.dtypes])
        h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            _feed(h, str(key))
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(str(len(obj)).encode())
        for item in obj:
            _feed(h, item)
    else:  # scalars and strings; an object whose repr names its address never matches, so it is registered afresh
        h.update(repr(obj).encode())


class RegistrationCache:
    """``spatial_mg.align.register`` computed once per input, for the tests that opt in.

    Inside ``with cache.reused():`` every call of ``spatial_mg.align.register`` (as
    ``align_section``, and so the CLI, look it up) whose spots and pixels hold the same content
    (every array, frame and ``uns`` entry) and whose keyword arguments are the same as those of an
    earlier call inside ``reused()`` returns a copy of that call's result instead of registering
    again; anything else registers for real (and is kept). register is deterministic
    (tests/pipeline/test_align_and_stack.py registers one section twice, outside any cache, and
    compares). A reused registration logs no stage lines: a test that checks those, or anything else
    register itself does, registers outside ``reused()``.
    """

    def __init__(self):
        self._results: dict[str, object] = {}
        self.hits = 0

    @staticmethod
    def _key(rna, msi, kwargs) -> str | None:
        import hashlib

        import anndata as ad

        if not (isinstance(rna, ad.AnnData) and isinstance(msi, ad.AnnData)):
            return None
        h = hashlib.sha256()
        try:
            for part in (rna, msi, kwargs):
                _feed(h, part)
        except (TypeError, ValueError):  # content it cannot hash (an unhashable frame column, say): registered afresh
            return None
        return h.hexdigest()

    @contextlib.contextmanager
    def reused(self):
        import copy

        from spatial_mg import align

        real = align.register

        def register(rna, msi, **kwargs):
            key = self._key(rna, msi, kwargs)
            if key is None:
                return real(rna, msi, **kwargs)
            if key in self._results:
                self.hits += 1
            else:
                self._results[key] = real(rna, msi, **kwargs)
            return copy.deepcopy(self._results[key])  # what a caller does to its copy stays with it

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(align, "register", register)
            # a Pose is immutable (it refuses attribute writes, and so deepcopy's rebuilding): shared, not copied
            mp.setattr(align.Pose, "__deepcopy__", lambda pose, memo: pose, raising=False)
            yield self


@pytest.fixture(scope="session")
def registration_cache() -> RegistrationCache:
    return RegistrationCache()


# --- two small synthetic sections, shared by the pipeline and CLI tests ------------------------------
@pytest.fixture(scope="session")
def sections_seed3(tmp_path_factory):
    """Two small synthetic sections (seed 3) written in the real formats: ``(root, data)``."""
    from spatial_mg.sim import synthetic_vicari

    root = tmp_path_factory.mktemp("sections_seed3")
    data = synthetic_vicari(n_sections=2, n_spots=200, n_genes=60, n_metabolites=6, msi_pitch_um=100.0, seed=3)
    data.write(root)
    return root, data


@pytest.fixture(scope="session")
def sections_seed3_aligned(sections_seed3, registration_cache):
    """Both sections read and aligned (``align_section``, device="cpu"), in order S1, S2.

    Their registrations are real ones, kept in ``registration_cache``: a CLI test that aligns
    these files with ``--device cpu`` inside ``registration_cache.reused()`` pairs them without
    registering them again.
    """
    from spatial_mg.io import SectionFiles
    from spatial_mg.pipeline import align_section, read_peak_list, read_section

    root, data = sections_seed3
    peaks = read_peak_list(root / "peaks.csv")
    files = [SectionFiles(s.name, root / s.name / "outs", root / s.name / "msi" / f"{s.name}.imzML") for s in data.sections]
    with registration_cache.reused():
        return [align_section(read_section(f, mz_bins=peaks), device="cpu") for f in files]
