"""PoEVAE: the user-facing model class (AnnData/MuData aware), in scvi-tools' shape."""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .._atomic import atomic_dir
from .._constants import (
    MODEL_REGISTRY_FILE,
    MODEL_WEIGHTS_FILE,
    NORMALIZE_TARGET_SUM,
    SPATIAL_KEY,
    STD_LAYER,
    UNS_KEY,
)
from ._data import DeviceData, HostData, feature_moments, read_data
from ._fusion import product_of_experts
from ._module import PoEModule
from ._registry import Registry, build_registry, categories_of, lookup, remember
from ._training import Trainer, TrainingConfig

_FORMAT_VERSION = 1


def _device(accelerator: str | torch.device) -> torch.device:
    if isinstance(accelerator, torch.device):
        return accelerator
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator in ("gpu", "cuda") or str(accelerator).startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"accelerator={accelerator!r} but torch sees no CUDA device; use 'cpu' or 'auto'")
        return torch.device("cuda" if accelerator == "gpu" else accelerator)
    if accelerator == "cpu":
        return torch.device("cpu")
    raise ValueError(f"accelerator must be 'auto', 'cpu', 'gpu' or 'cuda[:i]', not {accelerator!r}")


class PoEVAE:
    """Product-of-Experts VAE for paired and mosaic multimodal data (Multigrate in Pyro).

    Each modality's encoder gives a Gaussian expert over the latent; the joint posterior
    is their precision-weighted product with the N(0, I) prior (``fusion="poe"``) or
    their mixture (``fusion="moe"``). Decoders give each modality's likelihood from the
    joint latent; categorical covariates enter encoders and decoders as embeddings.

    Call :meth:`setup_mudata` on the data first.

    Parameters
    ----------
    mdata
        The MuData given to :meth:`setup_mudata`.
    n_latent
        Latent dimensions.
    fusion
        ``"poe"`` (product of experts) or ``"moe"`` (mixture of experts).
    n_hidden, n_layers
        Width and number of hidden layers of every encoder and decoder.
    layer_norm
        Layer normalisation after each hidden linear layer.
    dropout_rate
        Dropout in the encoders.
    embedding_dim
        Size of each covariate's embedding.
    dispersion
        NB inverse dispersion ``"feature"`` or ``"feature-batch"`` (needs ``batch_key``).
    heteroscedastic
        Gaussian modalities get a per-cell scale from the decoder, not one per feature.
    batch_mmd_weight
        Weight of the multi-scale RBF MMD between the groups of ``mmd_key`` (default:
        ``batch_key``) on the joint latent; for batch correction.
    modality_mmd_weight
        Weight of the MMD between the per-modality latents of cells that have both.
    modality_dropout
        Share of multimodal cells whose encoders see, in each training step, only one of
        their modalities (picked at random); trains the single-modality posteriors that
        :meth:`predict` uses (e.g. RNA alone to predict metabolites). Default 0.5: on
        the synthetic benchmark (``benchmarks/prediction_sweep.py``) it predicted held-out
        metabolites from RNA better than 0.25 over 16 seeds.
    seed
        Seeds weight initialisation and, unless ``train`` gets another, training.
    """

    def __init__(
        self,
        mdata,
        n_latent: int = 16,
        fusion: str = "poe",
        n_hidden: int = 128,
        n_layers: int = 2,
        layer_norm: bool = True,
        dropout_rate: float = 0.1,
        embedding_dim: int = 8,
        dispersion: str = "feature",
        heteroscedastic: bool = False,
        batch_mmd_weight: float = 0.0,
        modality_mmd_weight: float = 0.0,
        modality_dropout: float = 0.5,
        seed: int = 0,
    ):
        registry = lookup(mdata)
        if registry is None:
            raise ValueError("this MuData was not set up: call PoEVAE.setup_mudata(mdata, modalities={...}) first")
        host = read_data(mdata, registry)
        reg = registry
        kwargs = {
            "modalities": [(n, e.likelihood, len(e.features)) for n, e in reg.modalities.items()],
            "n_latent": n_latent,
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "layer_norm": layer_norm,
            "dropout_rate": dropout_rate,
            "covariate_sizes": [(len(c), 0) for c in reg.covariates.values()],
            "embedding_dim": embedding_dim,
            "batch_covariate": 0 if reg.batch_key is not None else None,
            "dispersion": dispersion,
            "heteroscedastic": heteroscedastic,
            "fusion": fusion,
            "batch_mmd_weight": batch_mmd_weight,
            "n_mmd_groups": len(reg.mmd_categories),
            "modality_mmd_weight": modality_mmd_weight,
            "modality_dropout": modality_dropout,
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = PoEModule(**kwargs)
        _fit_data_scales(module, host, reg)
        self._assemble(reg, module, kwargs, seed, host=host, mdata=mdata)

    def _assemble(self, registry: Registry, module: PoEModule, kwargs: dict, seed: int, host=None, mdata=None, history=None, frozen=False):
        self.registry = registry
        self.module = module
        self._module_kwargs = kwargs
        self.seed = seed
        self._host: HostData | None = host
        self.mdata = mdata
        self._history: list[dict] = list(history or [])
        self._frozen_reference = frozen
        if frozen:
            module.freeze_reference()
        return self

    def __repr__(self) -> str:
        mods = ", ".join(f"{n}: {e.likelihood} x {len(e.features)}" for n, e in self.registry.modalities.items())
        state = "trained" if self._history else "untrained"
        return f"PoEVAE({mods}; n_latent={self.module.n_latent}, fusion={self.module.fusion!r}; {state})"

    # --- setup -------------------------------------------------------------------------
    @classmethod
    def setup_mudata(
        cls,
        mdata,
        modalities: dict[str, str],
        batch_key: str | None = None,
        layers: dict[str, str | None] | None = None,
        categorical_covariate_keys: list[str] | None = None,
        mask_keys: dict[str, str] | None = None,
        mmd_key: str | None = None,
    ) -> None:
        """Record which modalities to model and how; validates, never modifies ``mdata``.

        A cell *has* a modality when it is in that modality's AnnData (MuData's
        ``obsmap``) and, if ``mask_keys`` names a boolean obs column for the modality,
        that column is True. A missing modality is never inferred from an all-zero row:
        such a row is observed data (zero counts). For an absent modality the expert
        leaves the posterior and the likelihood is masked.

        Parameters
        ----------
        mdata
            MuData; cells may have any subset of the modalities (mosaic data).
        modalities
            Modality name -> likelihood: ``"nb"`` (raw counts), ``"gaussian"``
            (intensities, CLR proteins; standardised per feature inside the model and
            returned in the input units), ``"bernoulli"`` (binarised ATAC).
        batch_key
            Obs column of the batch; enters the networks as a learned embedding, drives
            ``dispersion="feature-batch"`` and, by default, the batch MMD.
        layers
            Modality name -> layer holding its values (default ``X``). ``"nb"`` needs raw
            counts; they are never normalised in place.
        categorical_covariate_keys
            Further obs columns (section, technology, ...) embedded like the batch.
        mask_keys
            Modality name -> boolean obs column that marks cells whose measurement of
            that modality should count as missing (False) although the cell is listed.
        mmd_key
            Obs column whose groups the batch MMD aligns (default ``batch_key``).

        Notes
        -----
        Obs columns are read from ``mdata.obs``, else pooled from the modalities' obs.
        Features are recorded in order; later data are aligned to them by name.
        """
        registry = build_registry(mdata, modalities, batch_key, layers, categorical_covariate_keys, mask_keys, mmd_key)
        read_data(mdata, registry)  # validate values now, not at training time
        remember(mdata, registry)

    # --- training ----------------------------------------------------------------------
    def train(
        self,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        accelerator: str = "auto",
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        validation_fraction: float = 0.1,
        early_stopping: bool = True,
        patience: int = 20,
        min_delta: float = 0.0,
        lr_patience: int | None = None,
        lr_factor: float = 0.5,
        ema_epochs: float | None = 20.0,
        gradient_clip: float | None = 10.0,
        kl_warmup_epochs: int | None = None,
        kl_weight: float = 0.5,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        resume: bool = False,
        progress_bar: bool = True,
        seed: int | None = None,
    ) -> PoEVAE:
        """Fit the model by stochastic variational inference (Adam on the negative ELBO).

        Parameters
        ----------
        max_epochs
            Default ``min(400, round(400 * 20000 / n_cells))``, at least 20.
        batch_size
            Cells per step; default 128. Larger batches run faster (on a GPU many times
            faster), and may need a larger ``lr``.
        accelerator
            ``"auto"`` (CUDA if available), ``"cpu"``, ``"gpu"`` or ``"cuda:i"``. The
            whole data set is kept on the device (sparse counts as CSR).
        lr, weight_decay
            Adam settings (weight decay as L2 on the gradient). The defaults, with
            ``batch_size`` 128, ``kl_weight`` 0.5 and ``modality_dropout`` 0.5, are the
            best of the settings compared by ``benchmarks/prediction_sweep.py``.
        validation_fraction
            Share of cells held out (seeded) to compute the validation loss each epoch.
        early_stopping, patience, min_delta
            Stop when the validation loss (training loss without validation) has not
            improved by ``min_delta`` in ``patience`` epochs after warm-up; the weights
            of the best epoch are restored.
        lr_patience, lr_factor
            With ``lr_patience`` set, the learning rate is multiplied by ``lr_factor``
            whenever the monitored loss has not improved for that many epochs (after
            warm-up; down to 1 % of ``lr``). None: a constant learning rate.
        ema_epochs
            Keep an exponential moving average of the weights (Polyak averaging) over
            about this many epochs, and early in training over about the last tenth of
            the steps taken, so untrained weights fade out; validation, early stopping
            and the final weights use the average. None: the optimiser's weights. The
            default 20 raised the median Pearson margin over the better of ridge and kNN
            from +0.014 to +0.019 over 10 synthetic seeds (``prediction_sweep.py``).
        gradient_clip
            Maximum global gradient norm (None: no clipping).
        kl_warmup_epochs
            The KL weight rises linearly to ``kl_weight`` over these epochs; default
            ``max_epochs // 4``.
        kl_weight
            Final weight of the KL term (1: the ELBO; below 1 a sharper, less regularised
            posterior, as in a beta-VAE). Default 0.5, which predicted held-out modalities
            better than 1 on the synthetic benchmark. The validation loss uses it too.
        checkpoint_dir
            Folder for ``last.ckpt``, written atomically every ``checkpoint_every`` epochs.
        resume
            Continue from the checkpoint in ``checkpoint_dir`` if there is one (same model,
            data and settings), exactly as if training had not stopped.
        progress_bar
            Show a tqdm bar over epochs.
        seed
            Seeds the split, the shuffling and the sampling; default the model's seed.

        Returns
        -------
        self, trained; per-epoch losses in :attr:`history`.

        Raises
        ------
        FloatingPointError
            A loss term became NaN; names the term and the epoch and restores the weights
            of the last finished epoch.
        """
        if self._host is None:
            raise ValueError("this model has no training data (it was loaded); use PoEVAE.load(path, mdata=...)")
        n = self._host.n_obs
        max_epochs = int(max_epochs if max_epochs is not None else max(20, min(400, round(400 * 20000 / n))))
        seed = self.seed if seed is None else int(seed)
        device = _device(accelerator)
        if not 0 <= validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), not {validation_fraction}")
        order = np.random.default_rng(seed).permutation(n)
        n_val = int(round(validation_fraction * n)) if n >= 20 else 0
        config = TrainingConfig(
            max_epochs=max_epochs,
            batch_size=int(batch_size or 128),
            lr=lr,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            patience=patience,
            min_delta=min_delta,
            lr_patience=lr_patience,
            lr_factor=lr_factor,
            ema_epochs=None if ema_epochs is None else float(ema_epochs),
            gradient_clip=gradient_clip,
            kl_warmup_epochs=max_epochs // 4 if kl_warmup_epochs is None else int(kl_warmup_epochs),
            kl_weight=float(kl_weight),
            checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
            checkpoint_every=checkpoint_every,
            resume=resume,
            progress_bar=progress_bar,
            seed=seed,
        )
        self.module.to(device)
        data = DeviceData(self._host, self.registry, device)
        val_idx = torch.as_tensor(np.sort(order[:n_val]), device=device)
        train_idx = torch.as_tensor(np.sort(order[n_val:]), device=device)
        fingerprint = self._fingerprint(n, validation_fraction, seed)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            trainer = Trainer(self.module, data, train_idx, val_idx, config, fingerprint, self._history)
            try:
                trainer.fit()
            finally:  # a failed run keeps the epochs it finished
                self._history = trainer.history
        self.module.eval()
        return self

    def _fingerprint(self, n_obs: int, validation_fraction: float, seed: int) -> str:
        text = json.dumps([self.registry.to_json(), self._module_kwargs, n_obs, validation_fraction, seed], default=str)
        return hashlib.sha1(text.encode()).hexdigest()

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch losses per cell (``train_*``, ``val_*``, one column per term), KL weight, seconds."""
        if not self._history:
            return pd.DataFrame()
        return pd.DataFrame(self._history).set_index("epoch")

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    # --- inference ---------------------------------------------------------------------
    def _read(self, data, modality: str | None, exclude: str | None = None) -> HostData:
        if data is None or data is self.mdata:
            if self._host is None:
                raise ValueError("this model holds no data (it was loaded): pass the data to use")
            return self._host
        mod = None
        if not hasattr(data, "mod"):
            mod = modality or self._anndata_modality(data, exclude)
        return read_data(data, self.registry, what="query", anndata_modality=mod, require_all=False)

    def _anndata_modality(self, adata, exclude: str | None) -> str:
        names = set(map(str, adata.var_names))
        fits = [n for n, e in self.registry.modalities.items() if n != exclude and set(e.features) <= names]
        if len(fits) != 1:
            raise ValueError(
                f"cannot tell which modality this AnnData holds ({'several' if fits else 'none'} of "
                f"{self.registry.names} match its features); pass modality=..."
            )
        return fits[0]

    def _batches(self, host: HostData, batch_size: int):
        device = self.device
        data = DeviceData(host, self.registry, device)
        for idx in torch.arange(host.n_obs, device=device).split(batch_size):
            yield data.batch(idx)

    @torch.no_grad()
    def get_latent_representation(
        self, mdata=None, modality: str | None = None, batch_size: int = 4096
    ) -> np.ndarray:
        """Posterior mean of the latent for each cell (not a sample).

        Parameters
        ----------
        mdata
            MuData or AnnData of one modality (default: the training data).
        modality
            None: the joint posterior of all the cell's modalities. A modality name: that
            modality's latent alone (its expert with the prior); NaN for cells lacking it.
            For an AnnData, the modality it holds (guessed from its features if None).
        batch_size
            Cells per forward pass.

        Returns
        -------
        ``(n_cells, n_latent)`` array. Store it where you want it, e.g.
        ``mdata.obsm["X_poe"] = z`` (:data:`spatial_mg._constants.LATENT_KEY`).
        """
        if modality is not None and modality not in self.registry.modalities:
            raise KeyError(f"unknown modality {modality!r}; the model has {self.registry.names}")
        host = self._read(mdata, modality)
        self.module.eval()
        out = []
        for batch in self._batches(host, batch_size):
            post, mu, logvar = self.module.posterior(batch, batch["mask"])
            if modality is None:
                out.append(post.mean)
                continue
            k = self.registry.names.index(modality)
            loc, _ = product_of_experts(mu[k : k + 1], logvar[k : k + 1], batch["mask"][k : k + 1])
            out.append(torch.where(batch["mask"][k].unsqueeze(-1), loc, torch.nan))
        return torch.cat(out).cpu().numpy()

    @torch.no_grad()
    def predict(
        self,
        query,
        target: str = "msi",
        return_std: bool = True,
        modality: str | None = None,
        n_samples: int = 32,
        normalize: bool = False,
        library_size: float | None = None,
        batch_size: int = 1024,
        seed: int = 0,
    ) -> ad.AnnData:
        """Posterior-predictive mean (and standard deviation) of ``target`` for each cell.

        The target is predicted from the cell's *other* modalities (its own values, if the
        query has them, are not shown to the encoders): ``p(x_target | x_others) =
        E_q(z | x_others)[p(x_target | z)]``, estimated with ``n_samples`` latent draws.

        Parameters
        ----------
        query
            AnnData of one modality (e.g. RNA only) or MuData with any subset of the
            modalities. Features are matched by name: reordered or extra features are
            fine, missing ones are an error. Covariate categories must be known (else map
            the query with :meth:`load_query_data` first).
        target
            Modality to predict.
        return_std
            Add the predictive standard deviation as layer ``"std"``.
        modality
            For an AnnData query, the modality it holds (guessed from features if None).
        n_samples
            Latent draws for the Monte Carlo estimate (seeded by ``seed``: repeatable).
        normalize
            ``"nb"`` targets: return expression per 10,000 counts (the decoder's
            proportions; std over the latent only) instead of expected counts.
        library_size
            ``"nb"`` targets: library size for cells whose target counts are not in the
            query (default: the median of the training cells). Cells that have the
            target modality use their own.
        batch_size
            Cells per forward pass.
        seed
            Seed of the latent draws.

        Returns
        -------
        AnnData, query cells x target features: ``X`` the mean in the units trained on
        (counts for ``"nb"``, input units for ``"gaussian"``, probabilities for
        ``"bernoulli"``), ``layers["std"]`` the standard deviation.
        """
        if target not in self.registry.modalities:
            raise KeyError(f"unknown target {target!r}; the model has {self.registry.names}")
        host = self._read(query, modality, exclude=target)
        t = self.registry.names.index(target)
        blk = self.module.blocks[t]
        device = self.device
        default_log_lib = math.log(library_size) if library_size else float(blk.typical_library.log())
        self.module.eval()
        means, stds, n_prior_only = [], [], 0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for batch in self._batches(host, batch_size):
                mask = batch["mask"].clone()
                has_target = mask[t].clone()
                mask[t] = False
                n_prior_only += int((~mask.any(0)).sum())
                post, _, _ = self.module.posterior(batch, mask)
                cov = self.module.embed(batch["codes"])
                batch_codes = self.module._batch_codes(batch["codes"])
                log_lib = torch.where(has_target, batch["log_library"][target], default_log_lib)
                first = torch.zeros((), device=device)
                second = torch.zeros((), device=device)
                for _ in range(n_samples):
                    m, v = blk.predictive_moments(post.rsample(), cov, log_lib, batch_codes, normalize)
                    first = first + m
                    second = second + v + m**2
                mean = first / n_samples
                means.append(mean)
                stds.append((second / n_samples - mean**2).clamp(min=0).sqrt())
        if n_prior_only:
            warnings.warn(
                f"{n_prior_only} cell(s) have no modality other than '{target}': their prediction is the "
                "prior's (the same population average for all of them)",
                stacklevel=2,
            )
        obs = query.obs.reindex(host.obs_names).copy() if hasattr(query, "obs") else pd.DataFrame(index=host.obs_names)
        out = ad.AnnData(
            X=torch.cat(means).cpu().numpy(),
            obs=obs,
            var=pd.DataFrame(index=pd.Index(self.registry.modalities[target].features)),
        )
        if return_std:
            out.layers[STD_LAYER] = torch.cat(stds).cpu().numpy()
        spatial = _spatial_of(query, out.obs_names)
        if spatial is not None:  # predicted maps draw where the spots are
            out.obsm[SPATIAL_KEY] = spatial
        likelihood = self.registry.modalities[target].likelihood
        units = {"nb": "counts per 10,000" if normalize else "expected counts", "gaussian": "input units", "bernoulli": "probability"}
        out.uns[UNS_KEY] = {
            "prediction": {
                "model": "PoEVAE",
                "target": target,
                "likelihood": likelihood,
                "units": units[likelihood],
                "n_samples": n_samples,
            }
        }
        return out

    # --- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write weights, registry and history to the folder ``path`` (atomically).

        Everything :meth:`load` needs to predict is in it; the training data are not.
        """
        state = {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        with atomic_dir(path, overwrite=overwrite) as tmp:
            torch.save(
                {
                    "format_version": _FORMAT_VERSION,
                    "state_dict": state,
                    "module_kwargs": self._module_kwargs,
                    "seed": self.seed,
                    "history": self._history,
                    "frozen_reference": self._frozen_reference,
                },
                tmp / MODEL_WEIGHTS_FILE,
            )
            (tmp / MODEL_REGISTRY_FILE).write_text(self.registry.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike, mdata=None, accelerator: str = "auto") -> PoEVAE:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path
            The model folder.
        mdata
            Optional data to attach (checked against the saved registry), for further
            training or as the default of :meth:`get_latent_representation`.
        accelerator
            Device to load onto.
        """
        path = Path(path)
        weights = path / MODEL_WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"no saved PoEVAE in '{path}' ({MODEL_WEIGHTS_FILE} missing)")
        saved = torch.load(weights, map_location="cpu", weights_only=True)
        registry = Registry.from_json((path / MODEL_REGISTRY_FILE).read_text())
        kwargs = saved["module_kwargs"]
        kwargs["modalities"] = [tuple(m) for m in kwargs["modalities"]]
        kwargs["covariate_sizes"] = [tuple(c) for c in kwargs["covariate_sizes"]]
        module = PoEModule(**kwargs)
        module.load_state_dict(saved["state_dict"])
        module.to(_device(accelerator)).eval()
        host = None
        if mdata is not None:
            host = read_data(mdata, registry)
            remember(mdata, registry)
        model = cls.__new__(cls)
        return model._assemble(registry, module, kwargs, saved["seed"], host, mdata, saved["history"], saved["frozen_reference"])

    # --- query mapping -----------------------------------------------------------------
    @classmethod
    def load_query_data(
        cls,
        query_mdata,
        reference_model: PoEVAE,
        query_in_train: bool = False,
        reference_mdata=None,
    ) -> PoEVAE:
        """Map query data onto a trained reference by architecture surgery (scArches).

        New categories of the covariates (e.g. a new batch) get new embedding rows (and
        dispersion rows). By default every reference weight is frozen, the reference rows
        of the embeddings included, and training the returned model fits the new rows
        alone: the reference model's outputs stay bit-identical.

        Parameters
        ----------
        query_mdata
            MuData (any subset of the reference's modalities) or AnnData of one modality.
        reference_model
            The trained reference.
        query_in_train
            Instead, train reference and query cells together, starting from the
            reference weights with everything trainable (the reference weights change).
            Needs the reference data: ``reference_mdata`` or the reference model's own.
        reference_mdata
            Reference data for ``query_in_train``.

        Returns
        -------
        A new PoEVAE on the query (and reference) cells; call :meth:`train` on it.
        """
        ref = reference_model
        registry = ref.registry
        extended = {}
        for key, cats in registry.covariates.items():
            new = [c for c in categories_of(query_mdata, key) if c not in cats]
            extended[key] = [*cats, *new]
        query_registry = registry.with_categories(extended)
        old_sizes = [a + b for a, b in ref._module_kwargs["covariate_sizes"]]
        new_counts = [len(extended[k]) - n for k, n in zip(registry.covariates, old_sizes)]
        kwargs = dict(ref._module_kwargs)
        kwargs["n_mmd_groups"] = len(query_registry.mmd_categories)
        if query_in_train:
            kwargs["covariate_sizes"] = [(n + k, 0) for n, k in zip(old_sizes, new_counts)]
        else:
            kwargs["covariate_sizes"] = list(zip(old_sizes, new_counts))
        module = PoEModule(**kwargs)
        _transfer_weights(ref.module, module)
        module.to(ref.device)
        mod = None if hasattr(query_mdata, "mod") else ref._anndata_modality(query_mdata, None)
        host = read_data(query_mdata, query_registry, what="query", anndata_modality=mod, require_all=False)
        if query_in_train:
            ref_data = reference_mdata if reference_mdata is not None else ref.mdata
            if ref_data is None:
                raise ValueError("query_in_train needs the reference data: pass reference_mdata=...")
            host = read_data(ref_data, query_registry, what="reference data", require_all=False).concat(host)
        model = cls.__new__(cls)
        return model._assemble(query_registry, module, kwargs, ref.seed, host, query_mdata, frozen=not query_in_train)


def _spatial_of(query, names: pd.Index) -> np.ndarray | None:
    """The query's ``obsm["spatial"]`` rows of cells ``names`` (from the MuData or any of its
    modalities), or None where the query has no coordinates for all of them."""
    sources = [query, *getattr(query, "mod", {}).values()]
    for source in sources:
        obsm = getattr(source, "obsm", None)
        if obsm is None or SPATIAL_KEY not in obsm or not source.obs_names.is_unique:
            continue
        rows = source.obs_names.get_indexer(names)
        if (rows >= 0).all():
            return np.asarray(obsm[SPATIAL_KEY])[rows].copy()
    return None


def _fit_data_scales(module: PoEModule, host: HostData, registry: Registry) -> None:
    """Record per-feature standardisation (Gaussian) and the median library (NB) in buffers."""
    for name, blk in zip(module.names, module.blocks):
        data = host.modalities[name]
        if blk.likelihood == "gaussian":
            mean, std = feature_moments(data)
            flat = std <= 1e-8 * np.maximum(1.0, np.abs(mean))
            if flat.any():
                feats = [f for f, b in zip(registry.modalities[name].features, flat) if b]
                warnings.warn(
                    f"modality '{name}': {len(feats)} feature(s) have zero variance (e.g. {feats[:3]}); they are "
                    "modelled unscaled and predicted as their constant value",
                    stacklevel=3,
                )
                std = np.where(flat, 1.0, std)
            blk.center.copy_(torch.as_tensor(mean, dtype=torch.float32))
            blk.spread.copy_(torch.as_tensor(std, dtype=torch.float32))
        elif blk.likelihood == "nb":
            library = data.library[np.unique(data.rowmap[data.present])]
            blk.typical_library.fill_(float(np.median(library)) if library.size else NORMALIZE_TARGET_SUM)


def _transfer_weights(source: PoEModule, target: PoEModule) -> None:
    """Copy every weight; embedding tables merge the source's rows as the new reference."""
    src = source.state_dict()
    state = target.state_dict()
    for key in state:
        prefix, _, leaf = key.rpartition(".")
        if leaf == "reference" and f"{prefix}.new" in src:
            merged = torch.cat([src[key], src[f"{prefix}.new"]])
            n_ref, n_new = state[key].shape[0], state[f"{prefix}.new"].shape[0]
            # categories the source lacks start at its mean row: a neutral first guess
            fill = merged.mean(0, keepdim=True).expand(n_ref + n_new - merged.shape[0], -1)
            full = torch.cat([merged, fill])
            state[key], state[f"{prefix}.new"] = full[:n_ref].clone(), full[n_ref:].clone()
        elif leaf != "new":
            state[key] = src[key].clone()
    target.load_state_dict(state)
