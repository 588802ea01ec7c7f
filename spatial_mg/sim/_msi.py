"""The MSI acquisition: a raster laid over the tissue by a similarity transform, and its pixel intensities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._geometry import rotation_matrix

_DETECTION_LIMIT = 0.3  # peaks below this fraction of the background mean are not picked
_TIC_SD = 0.2  # log-scale pixel-wide factor (matrix crystal size, laser energy)
N_NOISE_PEAKS = 12  # 2 matrix peaks in every pixel, then sporadic contaminants
_RIM_PITCHES = 3  # background pixels beyond the tissue's farthest point on a covering raster
# sample points per side of a pixel's footprint: 8 x 8 puts the covered share within ~1 %
# of the area integral for a straight edge, finer than the pixel noise (_TIC_SD)
_FOOTPRINT_SAMPLES = 8


@dataclass(frozen=True)
class MsiRaster:
    """Pixels ``(x, y)`` in ``1..nx`` x ``1..ny`` at ``pitch_um``, and the affine to STR micrometres.

    The MSI frame is ``(x, y) * pitch_um`` (what an imzML reader returns); ``affine`` maps
    it to STR micrometres: rotation, optional reflection, scale and translation.
    """

    nx: int
    ny: int
    pitch_um: float
    affine: np.ndarray

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        tissue_centre: np.ndarray,
        tissue_radius: float,
        pitch_um: float,
        rotation_deg: float | None,
        reflect: bool,
        scale: float | None,
    ) -> MsiRaster:
        """A raster about the tissue's size, off-centre: some tissue is missed, plenty of background is hit."""
        angle, scale = _draw_turn_and_scale(rng, rotation_deg, scale)
        direction = rng.uniform(0, 2 * np.pi)
        centre_str = tissue_centre + 0.45 * tissue_radius * np.array([np.cos(direction), np.sin(direction)])
        side_um = 2 * tissue_radius * rng.uniform(0.9, 1.2, size=2)
        return cls._placed(side_um, pitch_um, scale, angle, reflect, centre_str)

    @classmethod
    def covering(
        cls,
        rng: np.random.Generator,
        tissue_centre: np.ndarray,
        tissue_reach: float,
        pitch_um: float,
        rotation_deg: float | None,
        reflect: bool,
        scale: float | None,
    ) -> MsiRaster:
        """A raster centred on the tissue that holds all of it (``tissue_reach``: its farthest point), with a rim of background."""
        angle, scale = _draw_turn_and_scale(rng, rotation_deg, scale)
        side_um = 2 * (tissue_reach + _RIM_PITCHES * pitch_um) * rng.uniform(1.0, 1.1, size=2)
        return cls._placed(side_um, pitch_um, scale, angle, reflect, tissue_centre)

    @classmethod
    def _placed(cls, side_um, pitch_um: float, scale: float, angle: float, reflect: bool, centre_str) -> MsiRaster:
        """A raster of about ``side_um`` whose centre lands on ``centre_str``, turned by ``angle``."""
        nx, ny = (int(v) for v in np.ceil(side_um / (pitch_um * scale)))
        linear = scale * rotation_matrix(angle) @ np.diag([1.0, -1.0 if reflect else 1.0])
        centre_msi = pitch_um * np.array([(nx + 1) / 2, (ny + 1) / 2])
        affine = np.eye(3)
        affine[:2, :2] = linear
        affine[:2, 2] = centre_str - linear @ centre_msi
        return cls(nx, ny, float(pitch_um), affine)

    def pixels(self) -> np.ndarray:
        """Integer ``(x, y)`` of every pixel, line by line as the instrument scans."""
        yy, xx = np.mgrid[1 : self.ny + 1, 1 : self.nx + 1]
        return np.column_stack([xx.ravel(), yy.ravel()]).astype(np.int64)

    def to_str(self, msi_um: np.ndarray) -> np.ndarray:
        """MSI micrometres -> STR micrometres."""
        return msi_um @ self.affine[:2, :2].T + self.affine[:2, 2]


def footprint_cover(raster: MsiRaster, msi_um: np.ndarray, weight, near_um: np.ndarray) -> np.ndarray:
    """The share of each pixel's footprint (its square of side ``pitch_um``) that lies on tissue.

    A MALDI pixel's laser shot ablates whatever lies under it, so a pixel that straddles
    the tissue edge gets tissue signal in proportion to the tissue it covers: the
    partial-volume edge the registration reads at sub-pixel precision. ``weight`` maps STR
    micrometres to the soft tissue indicator; ``near_um`` is each pixel centre's signed
    distance to the outline (STR um): only pixels within a footprint's reach of it are
    integrated (``_FOOTPRINT_SAMPLES`` squared points), the rest take the indicator at
    their centre, which is 0 or 1 there.
    """
    cover = weight(raster.to_str(msi_um))
    reach = raster.pitch_um * np.sqrt(abs(np.linalg.det(raster.affine[:2, :2]))) + 50.0
    edge = np.flatnonzero(np.abs(near_um) < reach)
    if edge.size:
        k = _FOOTPRINT_SAMPLES
        offsets = ((np.arange(k) + 0.5) / k - 0.5) * raster.pitch_um
        grid = np.column_stack([a.ravel() for a in np.meshgrid(offsets, offsets)])  # (k*k, 2), MSI um
        points = (msi_um[edge][:, None, :] + grid[None]).reshape(-1, 2)
        cover[edge] = weight(raster.to_str(points)).reshape(edge.size, k * k).mean(axis=1)
    return cover


def observe_intensities(
    rng: np.random.Generator, mean: np.ndarray, noise_sd: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Pixel intensities (float32): mean times a pixel-wide and a per-peak log-normal factor, both of mean 1.

    Peaks below the detection limit come out as exact zeros, as after peak picking.
    """
    tic = np.exp(rng.normal(-(_TIC_SD**2) / 2, _TIC_SD, size=(mean.shape[0], 1)))
    noise = np.exp(rng.standard_normal(mean.shape) * noise_sd - noise_sd**2 / 2)
    out = mean * tic * noise
    out[out < _DETECTION_LIMIT * background] = 0.0
    return out.astype(np.float32)


def noise_peak_intensities(rng: np.random.Generator, on_tissue: np.ndarray, level: float) -> np.ndarray:
    """Matrix peaks in every pixel (strong off tissue, suppressed on it), sporadic weak contaminants.

    ``on_tissue``: booleans, or the share of each pixel's footprint on tissue (the matrix
    is suppressed in proportion).
    """
    n = on_tissue.size
    out = np.zeros((n, N_NOISE_PEAKS), dtype=np.float32)
    share = np.asarray(on_tissue, dtype=np.float64)
    matrix_level = (3.0 * share + 20.0 * (1.0 - share))[:, None] * level
    out[:, :2] = matrix_level * np.exp(rng.normal(0, 0.3, size=(n, 2)))
    sporadic = rng.random((n, N_NOISE_PEAKS - 2)) < 0.25
    out[:, 2:] = np.where(sporadic, level * np.exp(rng.normal(0, 0.5, size=sporadic.shape)), 0.0)
    return out


def straight_cut(rng: np.random.Generator, str_um: np.ndarray, on_tissue: np.ndarray, coverage: float) -> np.ndarray:
    """Pixels on one side of a straight edge at a random angle that keeps ``coverage`` of the tissue pixels.

    The acquisition region an operator draws smaller than the tissue: pixels beyond the
    edge are not acquired at all (tissue or background). ``str_um`` are the pixels' true
    positions (any frame); on a raster that holds the whole tissue, the share of its
    tissue pixels kept is the share of the tissue's area the MSI covers.
    """
    angle = rng.uniform(0, 2 * np.pi)
    along = str_um @ np.array([np.cos(angle), np.sin(angle)])
    edge = np.quantile(along[on_tissue], coverage)
    return along <= edge


def _draw_turn_and_scale(rng: np.random.Generator, rotation_deg: float | None, scale: float | None) -> tuple[float, float]:
    """The raster's turn (radians) and scale: as given, else drawn (turn first, then scale)."""
    angle = np.deg2rad(rotation_deg) if rotation_deg is not None else rng.uniform(0, 2 * np.pi)
    scale = float(scale) if scale is not None else float(rng.uniform(0.92, 1.06))
    return angle, scale
