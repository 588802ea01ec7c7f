"""Datasets: a synthetic Vicari-type (SMA) generator that writes the real file formats, and
the real SMA datasets (manifests in ``data_manifests/``), fetched and laid out for the readers."""

from ._fetch import data_home, fetch, list_datasets
from ._manifests import DatasetManifest, ManifestError, get_manifest, load_manifest, manifest_names
from ._paired_truth import paired_truth
from ._sma_layout import sma_sections
from ._synthetic_mosaic import synthetic_mosaic
from ._synthetic_vicari import SyntheticSection, SyntheticVicari, synthetic_vicari

__all__ = [
    "DatasetManifest",
    "ManifestError",
    "data_home",
    "fetch",
    "get_manifest",
    "list_datasets",
    "load_manifest",
    "manifest_names",
    "paired_truth",
    "SyntheticSection",
    "SyntheticVicari",
    "sma_sections",
    "synthetic_mosaic",
    "synthetic_vicari",
]
