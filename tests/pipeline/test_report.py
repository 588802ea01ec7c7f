"""The demo report reads predictability against spatial structure off the run's own numbers."""

import numpy as np
import pandas as pd

from spatial_mg.pipeline._report import _structure_sentence


def _table(sign: float) -> pd.DataFrame:
    moran = np.linspace(0.2, 0.9, 12)
    return pd.DataFrame({"morans_i_measured": moran, "poe_vae_pearson": 0.5 + sign * (moran - 0.5)})


def test_the_sentence_follows_the_sign_of_the_correlation():
    assert "-1.00" in _structure_sentence(_table(-1.0)) and "worst predicted" in _structure_sentence(_table(-1.0))
    assert "1.00" in _structure_sentence(_table(1.0)) and "better predicted" in _structure_sentence(_table(1.0))
    flat = _table(0.0).assign(poe_vae_pearson=np.tile([0.3, 0.6, 0.4], 4))
    assert "says little" in _structure_sentence(flat)
    assert "Too few" in _structure_sentence(_table(1.0).iloc[:2])
