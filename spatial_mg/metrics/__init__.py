"""Metrics: prediction accuracy per feature, integration quality, spatial autocorrelation."""

from ._correlation import feature_correlation
from ._integration import cluster_agreement, label_transfer_accuracy, mixing_silhouette
from ._spatial import morans_i

__all__ = ["cluster_agreement", "feature_correlation", "label_transfer_accuracy", "mixing_silhouette", "morans_i"]
