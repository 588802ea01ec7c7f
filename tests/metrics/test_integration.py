import numpy as np
import pytest

from spatial_mg.metrics import cluster_agreement, label_transfer_accuracy, mixing_silhouette


def _blobs(shift_batch=0.0, seed=0):
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(3), 60)
    batch = np.tile([0, 1], 90)
    x = np.eye(3)[types] * 10 + rng.normal(size=(180, 3)) + shift_batch * batch[:, None]
    return x, types, batch


def test_separated_types_score_one_and_random_labels_zero():
    x, types, _ = _blobs()
    assert cluster_agreement(x, types) == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}
    shuffled = np.random.default_rng(1).permutation(types)
    scores = cluster_agreement(x, shuffled)
    assert scores["nmi"] < 0.1 and abs(scores["ari"]) < 0.1


def test_mixing_silhouette_is_high_when_mixed_and_low_when_split():
    x, types, batch = _blobs()
    mixed = mixing_silhouette(x, batch, types)
    split = mixing_silhouette(_blobs(shift_batch=8.0)[0], batch, types)
    assert mixed > 0.9 and split < 0.5


def test_label_transfer_accuracy():
    x, types, _ = _blobs()
    assert label_transfer_accuracy(x[::2], types[::2], x[1::2], types[1::2]) == 1.0
    assert label_transfer_accuracy(x[::2], types[::2], x[1::2], (types[1::2] + 1) % 3) == 0.0
