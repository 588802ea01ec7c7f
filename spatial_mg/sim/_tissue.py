"""The synthetic tissue as functions of position: outline, domains, cell states, metabolite means.

Everything is defined in one canonical tissue frame (micrometres, tissue centred at the
origin) and shared by all serial sections; a :class:`SectionPose` maps a section's STR
micrometres into that frame, so each section shows the same layout slightly moved and
deformed, and any point (spot centre or MSI pixel centre) can be evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit, softmax

from .._geometry import rotation_matrix
from ._fields import SmoothField

_EDGE_UM = 10.0  # width of the soft tissue edge seen by the MSI
_DOMAIN_SOFTNESS_UM = 60.0  # how wide the transition between neighbouring domains is
OUTLINES = ("blob", "disc")


@dataclass(frozen=True)
class TissueModel:
    """Canonical tissue: an irregular blob split into soft domains with cell-state mixtures.

    Built by :meth:`sample`; see there for the parameters.
    """

    radius_um: float
    harmonics: np.ndarray  # (n_harmonics, 2): cos and sin amplitudes of the outline, orders 2..
    domain_centres: np.ndarray  # (n_domains, 2)
    domain_warp: SmoothField  # bends the Voronoi boundaries
    domain_state_logits: np.ndarray  # (n_domains, n_states)
    state_fine: SmoothField  # local composition changes, ~1.5 spot pitches
    state_broad: SmoothField
    library_domain_factor: np.ndarray  # (n_domains,): some regions yield more UMIs
    # metabolite mean: log mu = base + amp * (sqrt(rho) * z_state + sqrt(1 - rho) * z_field),
    # z_field from a section's own field (sample_metabolite_field)
    mlp_in: np.ndarray  # (n_hidden, n_states)
    mlp_bias: np.ndarray  # (n_hidden,)
    mlp_out: np.ndarray  # (n_hidden, n_metabolites)
    pair_states: np.ndarray  # (n_metabolites, 2): states whose co-occurrence feeds the metabolite
    metabolite_base: np.ndarray  # (n_metabolites,) log intensity on tissue
    metabolite_amp: np.ndarray  # (n_metabolites,) spatial log-scale spread
    state_fraction: np.ndarray  # (n_metabolites,) rho: share of spatial log-variance carried by states
    background_fraction: np.ndarray  # (n_metabolites,) off-tissue mean / exp(base)
    z_state_mean: np.ndarray
    z_state_sd: np.ndarray

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        area_um2: float,
        n_domains: int,
        n_states: int,
        n_metabolites: int,
        n_hidden: int = 16,
        outline: str = "blob",
    ) -> TissueModel:
        """Draw a tissue of about ``area_um2`` square micrometres.

        ``outline``: ``"blob"`` (an irregular outline) or ``"disc"`` (a circle, as a tissue
        core or punch has: the outline says nothing of the tissue's turn). The other draws
        are the same for both.
        """
        if outline not in OUTLINES:
            raise ValueError(f"outline must be one of {OUTLINES}, got {outline!r}.")
        n_harm = 5
        harmonics = rng.normal(0.0, 1.0, size=(n_harm, 2)) * (0.13 / np.arange(1, n_harm + 1) ** 0.7)[:, None]
        # scale the radius so that the blob area, 1/2 * integral r(phi)^2, is area_um2
        phi = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        if outline == "disc":
            harmonics = np.zeros_like(harmonics)
        else:  # keep the outline between 0.65 and 1.35 of the mean radius: a blob, not a starfish
            harmonics = harmonics * min(1.0, 0.35 / np.abs(cls._relative_radius(harmonics, phi) - 1).max())
        radius = np.sqrt(area_um2 / (np.pi * np.mean(cls._relative_radius(harmonics, phi) ** 2)))

        centres = cls._domain_centres(rng, harmonics, radius, n_domains)
        domain_warp = SmoothField.sample(rng, lengthscale=0.5 * radius, n_out=2)

        logits = np.full((n_domains, n_states), -1.0)
        for d in range(n_domains):
            first, second = rng.choice(n_states, size=2, replace=False)
            logits[d, first] += 3.0
            logits[d, second] += 1.8
        logits += rng.normal(0.0, 0.3, size=logits.shape)

        model = cls(
            radius_um=float(radius),
            harmonics=harmonics,
            domain_centres=centres,
            domain_warp=domain_warp,
            domain_state_logits=logits,
            state_fine=SmoothField.sample(rng, lengthscale=150.0, n_out=n_states),
            state_broad=SmoothField.sample(rng, lengthscale=0.4 * radius, n_out=n_states),
            library_domain_factor=np.exp(rng.normal(0.0, 0.15, size=n_domains)),
            mlp_in=rng.normal(0.0, 2.5, size=(n_hidden, n_states)),
            mlp_bias=rng.normal(0.0, 0.5, size=n_hidden),
            mlp_out=rng.normal(0.0, 1.0, size=(n_hidden, n_metabolites)),
            pair_states=np.array([rng.choice(n_states, size=2, replace=False) for _ in range(n_metabolites)]),
            metabolite_base=rng.uniform(np.log(300.0), np.log(3e4), size=n_metabolites),
            metabolite_amp=rng.uniform(0.5, 1.0, size=n_metabolites),
            # spread predictability from RNA: from mostly field-driven to mostly state-driven
            state_fraction=rng.permutation(np.linspace(0.05, 0.95, n_metabolites)),
            background_fraction=rng.uniform(0.01, 0.05, size=n_metabolites),
            z_state_mean=np.zeros(n_metabolites),
            z_state_sd=np.ones(n_metabolites),
        )
        # standardise the state signal over the tissue, so rho means what it says
        raw = model._state_signal(model.state_proportions(model.reference_points()))
        return replace(model, z_state_mean=raw.mean(axis=0), z_state_sd=raw.std(axis=0) + 1e-12)

    # --- outline ------------------------------------------------------------------------
    @staticmethod
    def _relative_radius(harmonics: np.ndarray, phi: np.ndarray) -> np.ndarray:
        orders = np.arange(2, 2 + harmonics.shape[0])
        return 1.0 + np.cos(np.outer(phi, orders)) @ harmonics[:, 0] + np.sin(np.outer(phi, orders)) @ harmonics[:, 1]

    def max_radius_um(self) -> float:
        """Largest distance from the centre to the outline."""
        phi = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        return float(self.radius_um * self._relative_radius(self.harmonics, phi).max())

    def area_um2(self) -> float:
        """Area inside the outline."""
        phi = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        return float(np.pi * np.mean((self.radius_um * self._relative_radius(self.harmonics, phi)) ** 2))

    def depth(self, v: np.ndarray) -> np.ndarray:
        """Signed distance (um, approximately) inside the outline: positive in tissue."""
        phi = np.arctan2(v[:, 1], v[:, 0])
        return self.radius_um * self._relative_radius(self.harmonics, phi) - np.hypot(v[:, 0], v[:, 1])

    def tissue_weight(self, v: np.ndarray) -> np.ndarray:
        """Soft tissue indicator in [0, 1]; 0.5 on the outline."""
        return expit(self.depth(v) / _EDGE_UM)

    def reference_points(self, n_side: int = 48) -> np.ndarray:
        """A regular grid of points inside the tissue, used to standardise signals."""
        r = self.max_radius_um()
        g = np.linspace(-r, r, n_side)
        pts = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
        return pts[self.depth(pts) > 0]

    @classmethod
    def _domain_centres(cls, rng: np.random.Generator, harmonics: np.ndarray, radius: float, n: int) -> np.ndarray:
        # farthest-point sampling among random interior candidates: domains of similar size
        phi = rng.uniform(0, 2 * np.pi, 4000)
        rad = np.sqrt(rng.uniform(0, 1, 4000)) * 0.85 * radius * cls._relative_radius(harmonics, phi)
        cand = np.column_stack([rad * np.cos(phi), rad * np.sin(phi)])
        chosen = [cand[0]]
        dist = np.linalg.norm(cand - cand[0], axis=1)
        for _ in range(n - 1):
            chosen.append(cand[np.argmax(dist)])
            dist = np.minimum(dist, np.linalg.norm(cand - chosen[-1], axis=1))
        return np.array(chosen)

    # --- domains and cell states ----------------------------------------------------------
    def domain_weights(self, v: np.ndarray) -> np.ndarray:
        """Soft domain membership, shape ``(n, n_domains)``: a soft Voronoi with bent boundaries."""
        warped = v + 0.25 * self.radius_um * self.domain_warp(v)
        dist = np.linalg.norm(warped[:, None, :] - self.domain_centres[None], axis=2)
        return softmax(-dist / _DOMAIN_SOFTNESS_UM, axis=1)

    def state_proportions(self, v: np.ndarray) -> np.ndarray:
        """Cell-state mixture per point, shape ``(n, n_states)``, rows sum to 1."""
        logits = self.domain_weights(v) @ self.domain_state_logits + 0.9 * self.state_fine(v) + 0.5 * self.state_broad(v)
        return softmax(logits, axis=1)

    def library_factor(self, v: np.ndarray) -> np.ndarray:
        """Relative UMI yield per point (regions differ in RNA content)."""
        return self.domain_weights(v) @ self.library_domain_factor

    # --- metabolites ----------------------------------------------------------------------
    def _state_signal(self, props: np.ndarray) -> np.ndarray:
        hidden = np.tanh((props - 1.0 / props.shape[1]) @ self.mlp_in.T * 2.0 + self.mlp_bias)
        mlp = hidden @ self.mlp_out / np.sqrt(self.mlp_in.shape[0])
        # co-localisation term: product of two states' shares (a metabolite made where they meet)
        pair = props[:, self.pair_states[:, 0]] * props[:, self.pair_states[:, 1]]
        return mlp + 4.0 * np.sqrt(pair)

    def sample_metabolite_field(self, rng: np.random.Generator) -> SmoothField:
        """A smooth field per metabolite, independent of the cell states.

        Drawn per section (matrix coating, local physiology): a model that learns cell states
        from one section cannot carry it to another, so it bounds what RNA can predict.
        """
        return SmoothField.sample(rng, lengthscale=0.3 * self.radius_um, n_out=self.metabolite_base.size)

    def metabolite_log_mean(self, v: np.ndarray, field: SmoothField) -> np.ndarray:
        """Log mean on-tissue intensity per point and metabolite, shape ``(n, n_metabolites)``."""
        z_state = (self._state_signal(self.state_proportions(v)) - self.z_state_mean) / self.z_state_sd
        z_field = field(v)
        rho = self.state_fraction
        return self.metabolite_base + self.metabolite_amp * (np.sqrt(rho) * z_state + np.sqrt(1 - rho) * z_field)

    def metabolite_mean(self, v: np.ndarray, field: SmoothField, cover: np.ndarray | None = None) -> np.ndarray:
        """Expected intensity: the tissue signal blended into the low off-tissue background at the edge.

        ``cover``: the share of each point's footprint that lies on tissue (an MSI pixel
        that straddles the outline, ``_msi.footprint_cover``); ``None``: the soft tissue
        indicator at the point itself.
        """
        return self._blend(v, np.exp(self.metabolite_log_mean(v, field)), cover)

    def metabolite_mean_from_states(self, v: np.ndarray) -> np.ndarray:
        """Expected intensity given the cell states alone, the section's own field averaged out.

        The field term ``amp * sqrt(1 - rho) * z_field`` has ``z_field ~ N(0, 1)`` at every
        point, so its log-normal factor has mean ``exp(amp**2 (1 - rho) / 2)``: what the
        best predictor from RNA alone (which cannot see the field) would predict.
        """
        z_state = (self._state_signal(self.state_proportions(v)) - self.z_state_mean) / self.z_state_sd
        rho, amp = self.state_fraction, self.metabolite_amp
        log_mean = self.metabolite_base + amp * np.sqrt(rho) * z_state + amp**2 * (1 - rho) / 2
        return self._blend(v, np.exp(log_mean))

    def _blend(self, v: np.ndarray, on_tissue: np.ndarray, cover: np.ndarray | None = None) -> np.ndarray:
        w = (self.tissue_weight(v) if cover is None else np.asarray(cover, dtype=np.float64))[:, None]
        background = np.exp(self.metabolite_base) * self.background_fraction
        return w * on_tissue + (1 - w) * background


@dataclass(frozen=True)
class SectionPose:
    """Where one serial section lies on its slide: STR micrometres -> canonical tissue frame.

    ``v = R(-angle) (u - centre) + warp_um * warp(u - centre)``: a rigid placement plus a
    small smooth deformation (sections stretch and fold a little when cut and mounted).
    """

    centre_um: np.ndarray
    angle: float
    warp: SmoothField
    warp_um: float

    @classmethod
    def sample(cls, rng: np.random.Generator, centre_um: np.ndarray, radius_um: float) -> SectionPose:
        """Draw a pose near ``centre_um`` with a rotation of up to about 15 degrees."""
        return cls(
            centre_um=np.asarray(centre_um, dtype=float),
            angle=float(rng.uniform(-np.pi / 12, np.pi / 12)),
            warp=SmoothField.sample(rng, lengthscale=0.7 * radius_um, n_out=2),
            warp_um=0.02 * radius_um,
        )

    def to_canonical(self, u: np.ndarray) -> np.ndarray:
        """Map STR micrometres (n, 2) to the canonical tissue frame."""
        d = np.asarray(u, dtype=float) - self.centre_um
        return d @ rotation_matrix(-self.angle).T + self.warp_um * self.warp(d)
