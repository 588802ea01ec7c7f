"""Reference predictors that the PoE-VAE is compared with: mean, ridge, kNN, optimal transport."""

from ._mean import predict_mean
from ._regression import log_normalize, predict_knn, predict_ridge
from ._transport import predict_moscot

__all__ = ["log_normalize", "predict_knn", "predict_mean", "predict_moscot", "predict_ridge"]
