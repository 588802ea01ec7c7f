"""The PoE-VAE as a Pyro program: model and guide side by side, pure torch (no AnnData).

Generative model, for cell ``j`` with covariate embedding ``c_j``::

    z_j ~ N(0, I)
    x_ij ~ p_i(x | decoder_i(z_j, c_j))      for each modality i with M_ij = 1

Guide: each present modality's encoder gives a Gaussian expert ``q_i(z | x_ij, c_j)``;
the joint ``q(z_j)`` is their product with the prior expert (``fusion="poe"``) or their
equal-weight mixture (``fusion="moe"``). One plate over cells, subsampled by index and
scaled by ``n_obs / batch``; the whole program is further scaled by ``1 / n_obs`` so every
loss term reads per cell, which keeps learning rate and gradient clipping independent of
the data-set size.

A minibatch is a dict of tensors (see :meth:`PoEModule.loss_terms`).
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine
from pyro.distributions.kl import kl_divergence
from pyro.distributions.util import scale_and_mask
from torch import nn

from .._constants import NORMALIZE_TARGET_SUM
from . import _draws
from ._fusion import LOGVAR_MAX, LOGVAR_MIN, MixtureOfExperts, diag_normal, product_of_experts
from ._likelihoods import NegativeBinomialLog, bernoulli, gaussian
from ._mmd import group_mmd, paired_mmd

_MIN_SCALE = 1e-3  # floor of the Gaussian observation scale, in standardised units


def _kl(q, p, z: torch.Tensor) -> torch.Tensor:
    """KL(q || p) per cell: analytic where registered (diagonal Gaussians), else the
    single-sample Monte Carlo estimate at ``z``, a draw of ``q`` (the MoE mixture)."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return q.log_prob(z) - p.log_prob(z)


class MLP(nn.Module):
    """``n_layers`` hidden layers of Linear, LayerNorm, ReLU (and dropout), then a Linear.

    Covariate embeddings enter the first layer through their own bias-free Linear, which
    equals a Linear on ``[x, cov]`` without copying ``x`` into a concatenation.
    """

    def __init__(self, n_in: int, n_cov: int, n_out: int, n_hidden: int, n_layers: int, layer_norm: bool, dropout: float):
        super().__init__()
        width = n_hidden if n_layers else n_out
        self.first = nn.Linear(n_in, width)
        self.covariates = nn.Linear(n_cov, width, bias=False) if n_cov else None
        layers: list[nn.Module] = []
        for i in range(n_layers):
            if i:
                layers.append(nn.Linear(n_hidden, n_hidden))
            if layer_norm:
                layers.append(nn.LayerNorm(n_hidden))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(_draws.Dropout(dropout))  # the same masks however a batch is split
        if n_layers:
            layers.append(nn.Linear(n_hidden, n_out))
        self.rest = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        if self.covariates is not None:
            h = h + self.covariates(cov)
        return self.rest(h)


class CovariateTable(nn.Module):
    """One learned row per category; rows added by query surgery live in a separate tensor.

    Keeping the reference rows in their own parameter lets surgery freeze them exactly:
    with ``requires_grad=False`` and outside the optimiser they stay bit-identical, which a
    gradient mask on one shared tensor would not guarantee (weight decay, Adam state).
    """

    def __init__(self, n_reference: int, dim: int, n_new: int = 0, init: str = "normal"):
        super().__init__()
        make = torch.randn if init == "normal" else torch.zeros
        self.reference = nn.Parameter(make(n_reference, dim))
        self.new = nn.Parameter(make(n_new, dim))

    @property
    def weight(self) -> torch.Tensor:
        if self.new.shape[0] == 0:
            return self.reference
        return torch.cat([self.reference, self.new])

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(codes, self.weight)


class ModalityBlock(nn.Module):
    """Encoder, decoder and observation-model parameters of one modality.

    Gaussian modalities are modelled standardised per feature (``center``, ``spread``
    buffers, saved with the weights); :meth:`predictive_moments` returns data units.
    """

    def __init__(
        self,
        likelihood: str,
        n_features: int,
        n_latent: int,
        n_cov: int,
        n_hidden: int,
        n_layers: int,
        layer_norm: bool,
        dropout: float,
        dispersion_rows: tuple[int, int] | None,
        heteroscedastic: bool,
        context: bool = False,
    ):
        super().__init__()
        self.likelihood = likelihood
        self.n_features = n_features
        self.heteroscedastic = heteroscedastic and likelihood == "gaussian"
        self.context = context
        n_in = n_features * (2 if context else 1)  # the spot's values, then its neighbourhood's
        self.encoder = MLP(n_in, n_cov, 2 * n_latent, n_hidden, n_layers, layer_norm, dropout)
        n_out = n_features * (2 if self.heteroscedastic else 1)
        self.decoder = MLP(n_latent, n_cov, n_out, n_hidden, n_layers, layer_norm, 0.0)
        self.dispersion: CovariateTable | None = None
        self.per_batch_dispersion = False
        if likelihood == "nb":
            rows = dispersion_rows or (1, 0)
            self.dispersion = CovariateTable(rows[0], n_features, rows[1], init="zeros")
            self.per_batch_dispersion = dispersion_rows is not None
        if likelihood == "gaussian" and not self.heteroscedastic:
            self.scale_raw = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("center", torch.zeros(n_features))
        self.register_buffer("spread", torch.ones(n_features))
        self.register_buffer("typical_library", torch.tensor(NORMALIZE_TARGET_SUM))

    def set_scales(self, center=None, spread=None, typical_library: float | None = None) -> None:
        """Fill the data-scale buffers (see :func:`spatial_mg.model._data.data_scales`)."""
        if center is not None:
            self.center.copy_(torch.as_tensor(center, dtype=torch.float32))
        if spread is not None:
            self.spread.copy_(torch.as_tensor(spread, dtype=torch.float32))
        if typical_library is not None:
            self.typical_library.fill_(typical_library)

    # --- guide side ---------------------------------------------------------------------
    def encoder_input(
        self, x: torch.Tensor, log_library: torch.Tensor, nonzero: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The encoder's view of ``x``; ``nonzero``: x's padded non-zero (cols, vals), on
        which the NB transform is computed (log1p of a cells x genes array is a costly pass
        on a CPU; zero counts map to zero, so the rest is filled in free)."""
        if self.likelihood == "nb":  # log1p of counts per 10k: the usual scale for an MLP
            per_10k = torch.exp(math.log(NORMALIZE_TARGET_SUM) - log_library).unsqueeze(-1)
            if nonzero is None:
                return torch.log1p(x * per_10k)
            cols, vals = nonzero  # padding: column 0, count 0, which adds log1p(0) = 0
            return torch.zeros_like(x).scatter_add_(-1, cols, torch.log1p(vals * per_10k))
        if self.likelihood == "gaussian":
            return self.standardise(x)
        return x

    def expert(
        self,
        x: torch.Tensor,
        cov: torch.Tensor,
        log_library: torch.Tensor,
        context: torch.Tensor | None = None,
        nonzero: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        h = self.encoder_input(x, log_library, nonzero)
        if self.context:  # the neighbourhood mean, on the same scale as the spot's own values
            if context is None:  # cells without the modality: masked out later, any input will do
                context = torch.zeros_like(x)
            h = torch.cat([h, self.encoder_input(context, torch.log(context.sum(-1).clamp_min(1.0)))], -1)
        out = self.encoder(h, cov)
        mu, logvar = out.chunk(2, -1)
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    # --- model side ---------------------------------------------------------------------
    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.spread

    def observed(self, x: torch.Tensor) -> torch.Tensor:
        """The value the likelihood scores: standardised for Gaussian modalities."""
        return self.standardise(x) if self.likelihood == "gaussian" else x

    def _log_theta(self, batch_codes: torch.Tensor | None) -> torch.Tensor:
        if self.per_batch_dispersion:
            return self.dispersion(batch_codes)
        return self.dispersion.reference[0]

    def distribution(
        self,
        z: torch.Tensor,
        cov: torch.Tensor,
        log_library: torch.Tensor,
        batch_codes: torch.Tensor | None = None,
        log_factorial: torch.Tensor | None = None,
        nonzero: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        out = self.decoder(z, cov)
        if self.likelihood == "nb":
            return NegativeBinomialLog(
                self._log_theta(batch_codes), logits=out, log_library=log_library, log_factorial=log_factorial, nonzero=nonzero
            )
        if self.likelihood == "gaussian":
            if self.heteroscedastic:
                loc, raw = out.chunk(2, -1)
            else:
                loc, raw = out, self.scale_raw
            return gaussian(loc, nn.functional.softplus(raw) + _MIN_SCALE)
        return bernoulli(out)

    def predictive_moments(
        self,
        z: torch.Tensor,
        cov: torch.Tensor,
        log_library: torch.Tensor,
        batch_codes: torch.Tensor | None,
        normalize: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of ``x | z`` in data units; ``normalize``: NB proportions x 1e4."""
        if self.likelihood == "nb" and normalize:
            out = self.decoder(z, cov)
            mean = torch.softmax(out, -1) * NORMALIZE_TARGET_SUM
            return mean, torch.zeros_like(mean)
        d = self.distribution(z, cov, log_library, batch_codes)
        if self.likelihood == "gaussian":
            return d.mean * self.spread + self.center, d.variance * self.spread**2
        return d.mean, d.variance


class PoEModule(nn.Module):
    """Pyro model and guide of the multimodal VAE, with the extra losses beside the ELBO.

    Parameters
    ----------
    modalities
        ``(name, likelihood, n_features)`` per modality, in a fixed order.
    n_latent, n_hidden, n_layers, layer_norm, dropout_rate
        Network sizes; dropout acts in the encoders only.
    covariate_sizes
        Number of categories of each categorical covariate (reference, new) pairs; each
        gets an embedding of ``embedding_dim`` that enters every encoder and decoder.
    batch_covariate
        Index of the covariate that holds the batch (per-batch dispersion), or None.
    dispersion
        ``"feature"`` or ``"feature-batch"`` (NB inverse dispersion per batch too).
    heteroscedastic
        Gaussian scale predicted per cell by the decoder instead of one per feature.
    fusion
        ``"poe"`` or ``"moe"``.
    batch_mmd_weight, n_mmd_groups
        Weight of the MMD between groups (batches, or any obs key) on the joint latent.
    modality_mmd_weight
        Weight of the MMD between the per-modality latents of cells that have both.
    modality_dropout
        Share of cells with two or more modalities whose encoders, in training, see only
        one of them (chosen at random), so that single-modality posteriors, which
        prediction uses, are trained too.
    context_modalities
        Modalities whose encoder also reads each spot's spatial context (the batch's
        ``context``: the mean of the spot and its neighbours), transformed as the spot's
        own values; the decoder still models the spot alone.
    modality_weights
        ``(name, weight)`` pairs: the weight of that modality's likelihood in the loss
        (others 1).
    """

    def __init__(
        self,
        modalities: list[tuple[str, str, int]],
        n_latent: int = 16,
        n_hidden: int = 128,
        n_layers: int = 2,
        layer_norm: bool = True,
        dropout_rate: float = 0.1,
        covariate_sizes: list[tuple[int, int]] = (),
        embedding_dim: int = 8,
        batch_covariate: int | None = None,
        dispersion: str = "feature",
        heteroscedastic: bool = False,
        fusion: str = "poe",
        batch_mmd_weight: float = 0.0,
        n_mmd_groups: int = 0,
        modality_mmd_weight: float = 0.0,
        modality_dropout: float = 0.0,
        context_modalities: tuple[str, ...] = (),
        modality_weights: tuple[tuple[str, float], ...] = (),
    ):
        super().__init__()
        if fusion not in ("poe", "moe"):
            raise ValueError(f"fusion must be 'poe' or 'moe', not {fusion!r}")
        if dispersion not in ("feature", "feature-batch"):
            raise ValueError(f"dispersion must be 'feature' or 'feature-batch', not {dispersion!r}")
        if dispersion == "feature-batch" and batch_covariate is None:
            raise ValueError("dispersion='feature-batch' needs a batch_key in setup_mudata")
        self.names = [m[0] for m in modalities]
        self.n_latent = n_latent
        self.fusion = fusion
        self.batch_covariate = batch_covariate
        self.batch_mmd_weight = float(batch_mmd_weight)
        self.n_mmd_groups = int(n_mmd_groups)
        self.modality_mmd_weight = float(modality_mmd_weight)
        self.modality_dropout = float(modality_dropout)
        weights = dict(modality_weights)
        self.modality_weights = [float(weights.get(name, 1.0)) for name in self.names]
        self.covariates = nn.ModuleList(CovariateTable(n_ref, embedding_dim, n_new) for n_ref, n_new in covariate_sizes)
        n_cov = embedding_dim * len(covariate_sizes)
        rows = tuple(covariate_sizes[batch_covariate]) if dispersion == "feature-batch" else None
        unknown = set(context_modalities) - set(self.names)
        if unknown:
            raise ValueError(f"context_modalities {sorted(unknown)} are not modalities of the model {self.names}")
        self.blocks = nn.ModuleList(
            ModalityBlock(
                lik, n_feat, n_latent, n_cov, n_hidden, n_layers, layer_norm, dropout_rate, rows, heteroscedastic, name in context_modalities
            )
            for name, lik, n_feat in modalities
        )

    # --- shared pieces ------------------------------------------------------------------
    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Concatenated covariate embeddings, ``(cells, n_covariates * embedding_dim)``."""
        if not len(self.covariates):
            return codes.new_zeros((codes.shape[0], 0), dtype=torch.get_default_dtype())
        return torch.cat([table(codes[:, k]) for k, table in enumerate(self.covariates)], -1)

    def _batch_codes(self, codes: torch.Tensor) -> torch.Tensor | None:
        return None if self.batch_covariate is None else codes[:, self.batch_covariate]

    def experts(self, batch: dict, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every modality's expert for every cell (absent ones are garbage, masked later)."""
        context, nonzero = batch.get("context", {}), batch.get("nonzero", {})
        out = [
            blk.expert(batch["x"][name], cov, batch["log_library"][name], context.get(name), nonzero.get(name))
            for name, blk in zip(self.names, self.blocks)
        ]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def fuse(self, mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor):
        """Joint posterior of the present experts, as a distribution with event dim 1."""
        if self.fusion == "poe":
            loc, scale = product_of_experts(mu, logvar, mask)
            return diag_normal(loc, scale)
        return MixtureOfExperts(mu, logvar, mask)

    def hide_modalities(self, mask: torch.Tensor) -> torch.Tensor:
        """Keep one random present modality for a ``modality_dropout`` share of multi-modal cells."""
        score = torch.where(mask, _draws.rand(mask.shape, mask.device, dim=1), -1.0)
        keep_one = nn.functional.one_hot(score.argmax(0), mask.shape[0]).T.bool()
        hide = (_draws.rand(mask.shape[1:], mask.device) < self.modality_dropout) & (mask.sum(0) > 1)
        return torch.where(hide, keep_one, mask)

    # --- the Pyro program ---------------------------------------------------------------
    def model(self, batch: dict, kl_weight: float = 1.0) -> None:
        n_obs, idx = batch["n_obs"], batch["idx"]
        cov = self.embed(batch["codes"])
        batch_codes = self._batch_codes(batch["codes"])
        with poutine.scale(scale=1.0 / n_obs), pyro.plate("cells", n_obs, subsample=idx):
            loc = cov.new_zeros((idx.shape[0], self.n_latent))
            with poutine.scale(scale=kl_weight):
                z = pyro.sample("z", diag_normal(loc, 1.0))
            for k, (name, blk) in enumerate(zip(self.names, self.blocks)):
                d = self._likelihood(k, z, cov, batch_codes, batch)
                with poutine.scale(scale=self.modality_weights[k]):
                    pyro.sample(name, d.mask(batch["mask"][k]), obs=blk.observed(batch["x"][name]))

    def guide(self, batch: dict, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        n_obs, idx = batch["n_obs"], batch["idx"]
        cov = self.embed(batch["codes"])
        with poutine.scale(scale=1.0 / n_obs), pyro.plate("cells", n_obs, subsample=idx):
            q, mu, logvar = self._joint_posterior(batch, cov)
            with poutine.scale(scale=kl_weight):
                pyro.sample("z", q)
        return mu, logvar

    # pieces of the two programs that the direct loss (loss_terms) calls in the same order
    def _joint_posterior(self, batch: dict, cov: torch.Tensor):
        """The guide's joint posterior (one present modality kept at random for a
        ``modality_dropout`` share of cells in training), and every expert's mean and log-variance."""
        mu, logvar = self.experts(batch, cov)
        mask = batch["mask"]
        shown = self.hide_modalities(mask) if self.training and self.modality_dropout > 0 else mask
        return self.fuse(mu, logvar, shown), mu, logvar

    def _likelihood(self, k: int, z: torch.Tensor, cov: torch.Tensor, batch_codes: torch.Tensor | None, batch: dict):
        """The model's distribution of modality ``k`` given ``z``."""
        name = self.names[k]
        return self.blocks[k].distribution(
            z, cov, batch["log_library"][name], batch_codes, batch["log_factorial"].get(name), batch["nonzero"].get(name)
        )

    # --- the loss -----------------------------------------------------------------------
    def loss_terms(self, batch: dict, kl_weight: float = 1.0, traced: bool = False) -> dict[str, torch.Tensor]:
        """Negative ELBO per cell, split into named terms, plus the weighted MMD penalties.

        By default the terms are computed directly from the guide's and the model's
        distributions, step for step as :meth:`guide` and :meth:`model` build them; with
        ``traced`` they are read off Pyro traces of the two programs instead. Both give the
        same numbers and gradients to float rounding (a test checks it per term); the
        direct path skips the traces' bookkeeping, about a tenth of a CPU step.

        Parameters
        ----------
        batch
            ``idx`` (cells, long: rows in the data set, for the plate), ``n_obs`` (int),
            ``x`` (name -> (cells, features)), ``mask`` (modalities, cells) bool,
            ``codes`` (cells, covariates) long, ``log_library`` (name -> (cells,)),
            ``log_factorial`` (name -> (cells,), NB modalities only), ``nonzero`` (name ->
            padded non-zero (cols, vals), NB modalities, optional), ``groups`` (cells,)
            long MMD group or None.
        kl_weight
            Warm-up factor on the KL term.
        traced
            Read the ELBO off Pyro traces (the reference the direct path is tested against).

        Returns
        -------
        ``nll_<modality>``, ``kl_z``, and ``mmd_batch`` / ``mmd_modality`` where weighted.
        """
        if traced:
            return self.traced_loss_terms(batch, kl_weight)
        # the plate's subsample scale (n_obs / cells) times the program's 1 / n_obs
        per_cell = 1.0 / batch["idx"].shape[0]
        # guide: the same calls in the same order as guide(), so the same random draws
        cov = self.embed(batch["codes"])
        q, mu, _ = self._joint_posterior(batch, cov)
        z = q.rsample()
        # model, at the guide's z
        terms: dict[str, torch.Tensor] = {}
        batch_codes = self._batch_codes(batch["codes"])
        for k, (name, blk) in enumerate(zip(self.names, self.blocks)):
            log_p = self._likelihood(k, z, cov, batch_codes, batch).log_prob(blk.observed(batch["x"][name]))
            terms[f"nll_{name}"] = -torch.where(batch["mask"][k], log_p * (per_cell * self.modality_weights[k]), 0.0).sum()
        prior = diag_normal(z.new_zeros(z.shape), 1.0)
        terms["kl_z"] = (_kl(q, prior, z) * (per_cell * kl_weight)).sum()
        terms.update(self._penalties(z, mu, batch))
        return terms

    def traced_loss_terms(self, batch: dict, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """:meth:`loss_terms` read off Pyro traces of the guide and the replayed model (what
        ``TraceMeanField_ELBO`` computes: analytic KL where registered, Monte Carlo
        otherwise), kept per site so a NaN can be traced to its term."""
        guide_tr = poutine.trace(self.guide).get_trace(batch, kl_weight)
        model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(batch, kl_weight)
        terms: dict[str, torch.Tensor] = {}
        for name, site in model_tr.nodes.items():
            if site["type"] != "sample" or name == "cells":
                continue
            if site["is_observed"]:
                log_p = site["fn"].log_prob(site["value"])
                terms[f"nll_{name}"] = -scale_and_mask(log_p, site["scale"], site["mask"]).sum()
                continue
            q = guide_tr.nodes[name]
            kl = _kl(q["fn"], site["fn"], q["value"])
            terms[f"kl_{name}"] = scale_and_mask(kl, q["scale"], q["mask"]).sum()
        mu, _ = guide_tr.nodes["_RETURN"]["value"]
        terms.update(self._penalties(guide_tr.nodes["z"]["value"], mu, batch))
        return terms

    def _penalties(self, z: torch.Tensor, mu: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        """The weighted MMD terms: between groups on the joint latent sample ``z``, and
        between modalities on the experts' means ``mu`` of cells that have both. They
        compare distributions, not cells, so in data-parallel training each rank computes
        them on the whole minibatch (:func:`~spatial_mg.model._draws.whole_minibatch`)."""
        terms: dict[str, torch.Tensor] = {}
        if self.batch_mmd_weight > 0 and self.n_mmd_groups > 1 and batch.get("groups") is not None:
            # code n_mmd_groups marks a group unseen in training: one-hot it away
            onehot = nn.functional.one_hot(batch["groups"], self.n_mmd_groups + 1)[:, :-1].to(mu.dtype)
            z_all, onehot = _draws.whole_minibatch(z), _draws.whole_minibatch(onehot)
            terms["mmd_batch"] = self.batch_mmd_weight * group_mmd(z_all, onehot)
        if self.modality_mmd_weight > 0 and len(self.names) > 1:
            mu, mask = _draws.whole_minibatch(mu, dim=1), _draws.whole_minibatch(batch["mask"], dim=1)
            pairs = [(a, b) for a in range(len(self.names)) for b in range(a + 1, len(self.names))]
            mmd = sum(paired_mmd(mu[a], mu[b], (mask[a] & mask[b]).to(mu.dtype)) for a, b in pairs)
            terms["mmd_modality"] = self.modality_mmd_weight * mmd / len(pairs)
        return terms

    # --- inference without Pyro's bookkeeping (prediction, latents) -------------------------
    @torch.no_grad()
    def posterior(self, batch: dict, mask: torch.Tensor):
        """Joint posterior given the modalities in ``mask`` ((modalities, cells) bool)."""
        cov = self.embed(batch["codes"])
        mu, logvar = self.experts(batch, cov)
        return self.fuse(mu, logvar, mask), mu, logvar

    @torch.no_grad()
    def latent_mean(self, batch: dict, modality: str | None = None) -> torch.Tensor:
        """Posterior mean of the latent, ``(cells, n_latent)``.

        ``modality`` None: the joint posterior of the cell's present modalities. A name:
        that modality's expert with the prior alone; NaN for cells that lack it.
        """
        post, mu, logvar = self.posterior(batch, batch["mask"])
        if modality is None:
            return post.mean
        k = self.names.index(modality)
        loc, _ = product_of_experts(mu[k : k + 1], logvar[k : k + 1], batch["mask"][k : k + 1])
        return torch.where(batch["mask"][k].unsqueeze(-1), loc, torch.nan)

    @torch.no_grad()
    def posterior_predictive(
        self,
        batch: dict,
        target: str,
        n_samples: int,
        normalize: bool = False,
        library_size: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior-predictive mean and standard deviation of ``target`` given the cell's
        *other* modalities: ``E_q(z | x_others)[p(x_target | z)]`` by ``n_samples`` latent
        draws from the global torch generator (seed it for repeatable draws).

        The variance is by the law of total variance: the mean over draws of ``Var[x | z]``
        plus the variance over draws of ``E[x | z]``. NB targets are predicted at the
        cell's own library size where the batch has its target counts, else at
        ``library_size`` (default: the typical library of the training data).

        Returns
        -------
        Mean and standard deviation ``(cells, target features)`` in data units (see
        :meth:`ModalityBlock.predictive_moments`), and a ``(cells,)`` bool: cells with no
        modality other than the target, whose prediction is the prior's.
        """
        t = self.names.index(target)
        blk = self.blocks[t]
        default_log_lib = math.log(library_size) if library_size else float(blk.typical_library.log())
        mask = batch["mask"].clone()
        has_target = mask[t].clone()
        mask[t] = False
        post, _, _ = self.posterior(batch, mask)
        cov = self.embed(batch["codes"])
        batch_codes = self._batch_codes(batch["codes"])
        log_lib = torch.where(has_target, batch["log_library"][target], default_log_lib)
        first = torch.zeros((), device=cov.device)
        second = torch.zeros((), device=cov.device)
        for _ in range(n_samples):
            m, v = blk.predictive_moments(post.rsample(), cov, log_lib, batch_codes, normalize)
            first = first + m
            second = second + v + m**2
        mean = first / n_samples
        std = (second / n_samples - mean**2).clamp(min=0).sqrt()
        return mean, std, ~mask.any(0)

    # --- data scales and query surgery ----------------------------------------------------
    def set_data_scales(self, scales: dict[str, dict]) -> None:
        """Set each modality's data scales (standardisation, typical library) from
        ``scales``: name -> keyword arguments of :meth:`ModalityBlock.set_scales`."""
        for name, blk in zip(self.names, self.blocks):
            blk.set_scales(**scales.get(name, {}))

    def copy_reference(self, reference: PoEModule) -> None:
        """Query surgery: take every weight of ``reference``. An embedding table takes the
        reference's rows (its reference rows, then its new ones) first; rows for categories
        the reference lacks start at the mean of its rows, a neutral first guess. Which of
        them are reference rows (frozen) or new rows is this module's split
        (:meth:`ModuleConfig.for_query`)."""
        src = reference.state_dict()
        state = self.state_dict()
        for key in state:
            prefix, _, leaf = key.rpartition(".")
            if leaf == "reference" and f"{prefix}.new" in src:
                merged = torch.cat([src[key], src[f"{prefix}.new"]])
                n_ref, n_new = state[key].shape[0], state[f"{prefix}.new"].shape[0]
                fill = merged.mean(0, keepdim=True).expand(n_ref + n_new - merged.shape[0], -1)
                full = torch.cat([merged, fill])
                state[key], state[f"{prefix}.new"] = full[:n_ref].clone(), full[n_ref:].clone()
            elif leaf != "new":
                state[key] = src[key].clone()
        self.load_state_dict(state)

    def freeze_reference(self) -> None:
        """scArches surgery: only the rows that new categories added stay trainable."""
        for p in self.parameters():
            p.requires_grad_(False)
        for m in self.modules():
            if isinstance(m, CovariateTable):
                m.new.requires_grad_(True)
