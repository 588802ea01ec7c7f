"""Read imzML + ibd (MALDI mass-spectrometry imaging) into a pixels x m/z AnnData."""

from __future__ import annotations

import re
import warnings
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np

from .._validation import existing_file
from ._mz_binning import MzBinning, make_binning
from ._msi_anndata import msi_anndata

# Pixels whose spectra are binned together; bounds memory for processed-mode files.
_CHUNK = 4096
# imzML's "universally unique identifier": the .imzML records it, the .ibd starts with it
_UUID_ACCESSION = "IMS:1000080"


def read_imzml(
    path: str | PathLike,
    *,
    mz_bins=None,
    ppm: float = 10.0,
    bin_width: float | None = None,
    mz_range: tuple[float, float] | None = None,
    pixel_size_um: float | tuple[float, float] | None = None,
    normalize: str | None = None,
) -> ad.AnnData:
    """Read an imzML file (continuous or processed mode) through pyimzML.

    Parameters
    ----------
    path
        The ``.imzML`` file; its ``.ibd`` must lie beside it with the same stem.
    mz_bins
        A peak list: each feature sums the intensities within ``ppm`` of one m/z.
    ppm
        Tolerance for ``mz_bins``, in parts per million of each peak's m/z.
    bin_width
        Uniform bins of this width (Da) instead of a peak list, over ``mz_range``
        (default: the range of all spectra).
    mz_range
        ``(min, max)`` m/z of the uniform bins.
    pixel_size_um
        Pixel size in micrometres (one number, or ``(x, y)``). Read from the file's
        scan settings (IMS:1000046/47) when not given.
    normalize
        ``None``, ``"tic"`` or ``"rms"``: divide each pixel by its total ion count or the
        root mean square of its spectrum (then multiply by the median over pixels, keeping
        the units' scale). The raw binned intensities stay in ``layers["raw"]``.

    Returns
    -------
    AnnData with pixels as rows and m/z bins as columns (``var["mz"]``), integer grid
    coordinates in ``obs["x"]``, ``obs["y"]`` (imzML's, 1-based), ``obs["tic"]`` of the
    whole spectrum, ``obsm["spatial"] = (x, y) * pixel size`` in micrometres and provenance
    in ``uns["spatial_mg"]``. Without ``mz_bins`` or ``bin_width`` a continuous-mode file
    keeps its own m/z axis; a processed-mode file needs one of them.
    """
    from pyimzml.ImzMLParser import ImzMLParser

    imzml = existing_file(path, "imzML file")
    ibd = existing_file(imzml.with_suffix(".ibd"), f"binary data (.ibd) of '{imzml.name}'")
    # the .ibd is opened here and handed to pyimzML, which would otherwise pick its own
    # (any *.ibd of that stem, whatever the case): the file checked is the file read
    with open(ibd, "rb") as binary:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pyimzML warns about accession ontology versions
                parser = ImzMLParser(str(imzml), parse_lib="ElementTree", ibd_file=binary)
        except Exception as err:  # pyimzML raises bare exceptions for malformed XML
            raise ValueError(f"Could not parse '{imzml}' as imzML ({type(err).__name__}: {err}).") from err
        _check_ibd_uuid(parser, imzml, ibd)
        _check_ibd_size(parser, imzml, ibd)
        coords = np.asarray(parser.coordinates, dtype=np.int64)
        if coords.shape[0] == 0:
            raise ValueError(f"'{imzml}' holds no spectra.")
        if coords.shape[1] > 2 and len(np.unique(coords[:, 2])) > 1:
            raise ValueError(f"'{imzml}' is a 3-D dataset (several z); read one z-plane at a time.")
        size_xy = _pixel_size(parser, imzml, pixel_size_um)
        mode = "continuous" if parser.metadata.file_description.param_by_name.get("continuous") else "processed"

        if mz_bins is None and bin_width is None and mode != "continuous":
            raise ValueError(
                f"'{imzml}' is a processed-mode (centroid) file: each pixel has its own m/z values. "
                "Pass mz_bins=<peak list> (with ppm=...) or bin_width=<Da> to bin them."
            )
        if mz_bins is None and bin_width is None:
            arguments = {"mz_axis": parser.getspectrum(0)[0]}
        else:
            if mz_bins is None and mz_range is None:
                mz_range = _mz_extent(parser, imzml)
            arguments = {"mz_bins": mz_bins, "ppm": ppm, "bin_width": bin_width, "mz_range": mz_range}
        try:
            binning = make_binning(**arguments)
        except ValueError as err:  # the file's own axis or extent may be what is wrong
            raise ValueError(f"Cannot bin the spectra of '{imzml}': {err}") from err

        raw, tic, rms = _bin_all(parser, binning, imzml)

    provenance = {
        "reader": "read_imzml",
        "source": str(imzml.resolve()),
        "imzml_mode": mode,
    }
    return msi_anndata(
        raw,
        x=coords[:, 0],
        y=coords[:, 1],
        pixel_size_um=size_xy,
        var=binning.var(),
        tic=tic,
        rms=rms,
        normalize=normalize,
        provenance={**provenance, "binning": binning.describe()},
    )


def _check_ibd_uuid(parser, imzml: Path, ibd: Path) -> None:
    """The .ibd must start with the UUID that the .imzML records: an .ibd of another
    acquisition with the same layout would otherwise be read as this one's spectra."""
    recorded = parser.metadata.file_description.param_by_accession.get(_UUID_ACCESSION)
    if recorded is None:
        warnings.warn(
            f"'{imzml}' records no UUID ({_UUID_ACCESSION}), so whether '{ibd.name}' belongs to it cannot be "
            "checked; make sure the two files were exported together.",
            stacklevel=3,
        )
        return
    # writers differ in form: 32 hex digits, or braced and dashed in upper case (pyimzML)
    expected = re.sub(r"[{}\-\s]", "", str(recorded)).lower()
    if not re.fullmatch(r"[0-9a-f]{32}", expected):
        raise ValueError(
            f"'{imzml}' records a malformed UUID ({_UUID_ACCESSION}: {recorded!r}); the file is damaged: export it again."
        )
    parser.m.seek(0)
    head = parser.m.read(16)
    if len(head) < 16:
        raise ValueError(
            f"'{ibd}' is truncated: {len(head)} bytes, not even the 16-byte UUID its imzML '{imzml.name}' records. "
            "Copy the .ibd file again."
        )
    if head.hex() != expected:
        raise ValueError(
            f"'{ibd}' does not belong to '{imzml}': the .ibd starts with UUID {head.hex()}, the .imzML records "
            f"{expected}. It holds another acquisition (or is damaged): put the .ibd exported together with this "
            ".imzML beside it, with the same name."
        )


def _check_ibd_size(parser, imzml: Path, ibd: Path) -> None:
    """A truncated .ibd would be read as garbage or fail deep in numpy; say so first."""
    for what, fmt in (("m/z", parser.mzPrecision), ("intensity", parser.intensityPrecision)):
        if fmt not in parser.sizeDict:
            raise ValueError(
                f"'{imzml}' does not say how its {what} values are stored (a binary data type such as "
                "MS:1000521 '32-bit float' is missing or unknown); the file is damaged: export it again."
            )
    needed = 0
    for offsets, lengths, fmt in (
        (parser.mzOffsets, parser.mzLengths, parser.mzPrecision),
        (parser.intensityOffsets, parser.intensityLengths, parser.intensityPrecision),
    ):
        ends = np.asarray(offsets, dtype=np.int64) + np.asarray(lengths, dtype=np.int64) * parser.sizeDict[fmt]
        needed = max(needed, int(ends.max(initial=0)))
    size = ibd.stat().st_size
    if size < needed:
        raise ValueError(
            f"'{ibd}' is truncated: {size:,} bytes, but its imzML points to data up to byte {needed:,}. "
            "Copy the .ibd file again (it is often the file that failed to transfer completely)."
        )


def _pixel_size(parser, imzml: Path, given) -> tuple[float, float]:
    in_file = parser.imzmldict.get("pixel size x"), parser.imzmldict.get("pixel size y")
    if in_file[0] is not None and in_file[1] is None:
        in_file = (in_file[0], in_file[0])  # some writers give x only for square pixels
    if given is not None:
        size = (float(given), float(given)) if np.isscalar(given) else tuple(float(v) for v in given)
        if in_file[0] is not None and not np.allclose(size, in_file, rtol=1e-3):
            warnings.warn(
                f"pixel_size_um={size} overrides the pixel size recorded in '{imzml.name}' ({in_file}).", stacklevel=3
            )
    elif in_file[0] is not None:
        size = (float(in_file[0]), float(in_file[1]))
    else:
        raise ValueError(
            f"'{imzml}' does not record its pixel size (scan settings IMS:1000046/IMS:1000047). "
            "Pass pixel_size_um=<micrometres> (the raster step of the acquisition)."
        )
    if not all(np.isfinite(s) and s > 0 for s in size):
        raise ValueError(f"Pixel size of '{imzml}' must be positive micrometres, got {size}.")
    return size


def _mz_extent(parser, imzml: Path) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    for i in range(len(parser.coordinates)):
        mz, _ = parser.getspectrum(i)
        _check_mz(mz, parser, i, imzml)
        if len(mz):
            lo, hi = min(lo, float(mz.min())), max(hi, float(mz.max()))
    if not np.isfinite(lo):
        raise ValueError(f"All spectra of '{imzml}' are empty; cannot derive an m/z range for the bins.")
    return lo, hi


def _check_mz(mz: np.ndarray, parser, i: int, imzml: Path) -> None:
    """A NaN or infinite m/z falls in no bin: its intensity would vanish without a word."""
    if not np.all(np.isfinite(mz)):
        x, y = parser.coordinates[i][:2]
        raise ValueError(
            f"NaN or infinite m/z values in '{imzml}' at pixel (x={x}, y={y}); the file is corrupt. "
            "Re-export it, or drop that pixel before reading."
        )


def _bin_all(parser, binning: MzBinning, imzml: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(parser.coordinates)
    out = np.zeros((n, binning.n_bins), dtype=np.float32)
    tic = np.zeros(n, dtype=np.float64)
    rms = np.zeros(n, dtype=np.float64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        mzs, ints, owners = [], [], []
        for i in range(start, stop):
            mz, intensity = parser.getspectrum(i)
            _check_mz(mz, parser, i, imzml)
            intensity = np.asarray(intensity, dtype=np.float64)
            if not np.all(np.isfinite(intensity)):
                x, y = parser.coordinates[i][:2]
                raise ValueError(
                    f"NaN or inf intensities in '{imzml}' at pixel (x={x}, y={y}); the file is corrupt or was "
                    "exported with missing values. Re-export it, or drop that pixel before reading."
                )
            with np.errstate(over="ignore"):  # an overflow is reported by msi_anndata, naming the pixel
                tic[i] = intensity.sum()
                rms[i] = np.sqrt(np.mean(intensity**2)) if intensity.size else 0.0
            mzs.append(np.asarray(mz, dtype=np.float64))
            ints.append(intensity)
            owners.append(np.full(len(mz), i - start, dtype=np.int64))
        if mzs:
            with np.errstate(over="ignore"):  # sums beyond float32 become inf, reported by msi_anndata
                out[start:stop] = binning.accumulate(
                    np.concatenate(mzs), np.concatenate(ints), np.concatenate(owners), stop - start
                )
    return out, tic, rms
