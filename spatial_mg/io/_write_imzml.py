"""Write centroid spectra as imzML + ibd with pyimzML, recording the pixel size as instruments do.

pyimzML's writer leaves the physical pixel size out of ``<scanSettings>``; we add the
cvParams IMS:1000044-47 (max dimension x/y, pixel size (x), pixel size y, micrometres)
that real instruments write, so ``ImzMLParser(...).imzmldict["pixel size x"]`` reads them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import scipy.sparse as sp


# the two imzML layouts: each pixel its own m/z list (centroid peak lists), or one m/z axis shared by all
IMZML_MODES = ("processed", "continuous")
_HEADER_BYTES = 1 << 16  # everything we edit lies before the first spectrum
_UM = 'unitCvRef="UO" unitAccession="UO:0000017" unitName="micrometer"'
_IMS_CV = (
    '<cv id="IMS" fullName="Imaging MS Ontology" version="1.1.0" '
    'uri="http://www.maldi-msi.org/download/imzml/imagingMS.obo"/>'
)


def write_imzml(
    path: str | PathLike,
    coords: np.ndarray,
    intensities: np.ndarray | sp.spmatrix | Sequence[np.ndarray],
    mzs: np.ndarray | Sequence[np.ndarray],
    *,
    pixel_size_um: float | tuple[float, float],
    mode: str = "processed",
    polarity: str = "positive",
    overwrite: bool = False,
) -> Path:
    """Write spectra to ``path`` (``.imzML``) and its ``.ibd`` beside it.

    Parameters
    ----------
    path
        The ``.imzML`` file to create; the ``.ibd`` gets the same stem.
    coords
        Integer pixel positions ``(n, 2)``, 1-based ``(x, y)`` as imzML counts them.
    intensities
        Either a pixels x peaks matrix whose columns are ``mzs`` (1-D, shared), or one
        intensity array per pixel with ``mzs`` one m/z array per pixel.
    mzs
        The m/z values: one shared axis, or one array per pixel (processed mode only).
    pixel_size_um
        Raster step in micrometres, one number or ``(x, y)``.
    mode
        ``"processed"``: each spectrum stores its own m/z array, and zero-intensity peaks of
        a matrix are dropped (a centroid list keeps detected peaks only). ``"continuous"``:
        one m/z axis shared by all pixels, zeros kept.
    polarity
        ``"positive"`` or ``"negative"`` scan.
    overwrite
        Replace existing files.

    Returns
    -------
    Path of the ``.imzML`` file.
    """
    from pyimzml.ImzMLWriter import ImzMLWriter

    path = Path(path)
    if path.suffix.lower() != ".imzml":
        raise ValueError(f"'{path}' must end with .imzML.")
    if mode not in IMZML_MODES:
        raise ValueError(f"mode must be one of {IMZML_MODES}, got {mode!r}.")
    size = (float(pixel_size_um),) * 2 if np.isscalar(pixel_size_um) else tuple(float(v) for v in pixel_size_um)
    if not all(np.isfinite(s) and s > 0 for s in size):
        raise ValueError(f"pixel_size_um must be positive micrometres, got {pixel_size_um}.")
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.integer) or coords.min() < 1:
        raise ValueError("coords must be an (n, 2) integer array of 1-based (x, y) pixel positions.")
    ibd = path.with_suffix(".ibd")
    if not overwrite and (path.exists() or ibd.exists()):
        raise FileExistsError(f"'{path}' or its .ibd already exists; pass overwrite=True to replace them.")

    spectra = _spectra(intensities, mzs, mode, len(coords))
    path.parent.mkdir(parents=True, exist_ok=True)
    # pyimzML writes two files under its own names; build them in a private sibling folder
    # (same file system, so the final renames are atomic), then move them into place
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.tmp-") as tmp:
        raw_xml = Path(tmp) / "raw.imzML"
        with ImzMLWriter(str(raw_xml), mode=mode, polarity=polarity, spec_type="centroid") as writer:
            for (x, y), (mz, inten) in zip(coords.tolist(), spectra, strict=True):
                writer.addSpectrum(mz, inten, (int(x), int(y)))
        final_xml = Path(tmp) / path.name
        _add_scan_settings(raw_xml, final_xml, size, coords.max(axis=0), path.stem)
        # the .ibd goes first: a new .imzML never points at an old binary
        os.replace(Path(tmp) / "raw.ibd", ibd)
        os.replace(final_xml, path)
    return path


def _spectra(intensities, mzs, mode: str, n: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """One ``(mz, intensity)`` pair per pixel, sorted by m/z, never empty."""
    shared = isinstance(mzs, np.ndarray) and mzs.ndim == 1 and np.issubdtype(mzs.dtype, np.number)
    if shared:
        axis = np.asarray(mzs, dtype=np.float64)
        order = np.argsort(axis, kind="stable")
        matrix = sp.csr_matrix(intensities) if sp.issparse(intensities) else np.asarray(intensities)
        if matrix.shape != (n, axis.size):
            raise ValueError(f"intensities must be (n_pixels, n_mz) = ({n}, {axis.size}), got {matrix.shape}.")
        for i in range(n):
            row = matrix[i].toarray().ravel() if sp.issparse(matrix) else matrix[i]
            row = np.asarray(row, dtype=np.float64)[order]
            if mode == "continuous":
                yield axis[order], row
                continue
            keep = row != 0
            if not keep.any():  # pyimzML cannot write an empty spectrum: keep one zero peak
                keep[0] = True
            yield axis[order][keep], row[keep]
        return
    if mode == "continuous":
        raise ValueError("continuous mode needs one shared m/z axis: pass mzs as a 1-D array.")
    if len(mzs) != n or len(intensities) != n:
        raise ValueError(f"Give one m/z array and one intensity array per pixel ({n} pixels).")
    for mz, inten in zip(mzs, intensities, strict=True):
        mz, inten = np.asarray(mz, dtype=np.float64), np.asarray(inten, dtype=np.float64)
        if mz.shape != inten.shape or mz.size == 0:
            raise ValueError("Each spectrum needs equally long, non-empty m/z and intensity arrays.")
        order = np.argsort(mz, kind="stable")
        yield mz[order], inten[order]


def _add_scan_settings(src: Path, dst: Path, size: tuple[float, float], max_xy: np.ndarray, run_id: str) -> None:
    """Copy ``src`` to ``dst`` adding the pixel size to ``<scanSettings>`` (and the IMS cv it refers to)."""
    params = "".join(
        f'\n      <cvParam cvRef="IMS" accession="{acc}" name="{name}" value="{value}" {_UM}/>'
        for acc, name, value in (
            ("IMS:1000044", "max dimension x", int(round(max_xy[0] * size[0]))),
            ("IMS:1000045", "max dimension y", int(round(max_xy[1] * size[1]))),
            ("IMS:1000046", "pixel size (x)", repr(size[0])),
            ("IMS:1000047", "pixel size y", repr(size[1])),
        )
    )
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        head = fin.read(_HEADER_BYTES).decode("latin-1")
        end = head.find("</scanSettings>")
        if end < 0 or "<run " not in head:
            raise RuntimeError("Unexpected imzML layout from pyimzML: no <scanSettings> in the header.")
        head = head[:end].rstrip(" ") + params + "\n    " + head[end:]
        head = re.sub(r'<cvList count="(\d+)">', lambda m: f'<cvList count="{int(m.group(1)) + 1}">\n    {_IMS_CV}', head, 1)
        # pyimzML names the run after its temporary output path
        head = re.sub(r'(<run [^>]*\bid=")[^"]*(")', lambda m: m.group(1) + _xml_id(run_id) + m.group(2), head, 1)
        fout.write(head.encode("latin-1"))
        shutil.copyfileobj(fin, fout, 1 << 20)


def _xml_id(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return clean if clean[:1].isalpha() or clean[:1] == "_" else f"_{clean}"
