"""PoEVAE: the user-facing model class, in scvi-tools' shape.

It turns MuData and AnnData into tensors (``_data``) and the module's outputs back into
arrays and AnnData. The maths (posteriors, predictions, data scales, surgery) is the
module's (``_module``), the loop ``_training``'s, the settings and defaults ``_config``'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from .._atomic import atomic_dir
from .._constants import (
    LOWER_LAYER,
    MODEL_CALIBRATION_FILE,
    MODEL_REGISTRY_FILE,
    MODEL_WEIGHTS_FILE,
    SPATIAL_KEY,
    STD_LAYER,
    UNCALIBRATED_STD_LAYER,
    UNS_KEY,
    UPPER_LAYER,
)
from .._errors import DeviceUnavailableError
from ._calibration import ONE_SIGMA, Calibration
from ._distributed import check_shardable, group_from_environment, plan, spawn_training
from ._config import DEFAULT_SEED, ModuleConfig, TrainingConfig, check_integer, check_number
from ._data import DeviceData, HostData, data_scales, read_data
from ._chunked import ChunkedData
from ._disk import DiskMatrix
from ._module import PoEModule
from ._registry import (
    Registry,
    build_registry,
    check_registry_matches,
    read_saved_registry,
    read_setup,
    store_setup,
)
from ._setup_view import describe_setup
from ._training import Trainer

# 1: model.pt holds the architecture as ``module_kwargs``; 2: as ``module_config``
_FORMAT_VERSION = 2


def _device(accelerator: str | torch.device) -> torch.device:
    if isinstance(accelerator, torch.device):
        return accelerator
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator in ("gpu", "cuda") or str(accelerator).startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"accelerator={accelerator!r} but torch sees no CUDA device; use 'cpu' or 'auto'")
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
        :meth:`predict` uses (e.g. RNA alone to predict metabolites). The default, with
        ``train``'s ``kl_weight`` 0.5, predicted held-out metabolites from RNA better than
        0.25 (``benchmarks/results/model_notes.md``).
    modality_weights
        Modality name -> weight of its likelihood in the loss (Multigrate's loss
        coefficients; others 1), to balance thousands of genes against a hundred
        metabolites. With weights other than 1 the loss, and :meth:`get_elbo`, is the
        weighted ELBO.
    seed
        Seeds weight initialisation and, unless ``train`` gets another, training.

    Notes
    -----
    The defaults are those of :class:`~spatial_mg.model.ModuleConfig` (e.g.
    ``ModuleConfig.n_latent``) and :data:`~spatial_mg.model.DEFAULT_SEED`. The data's
    values are not checked again here: :meth:`setup_mudata` did that.
    """

    def __init__(
        self,
        mdata,
        n_latent: int = ModuleConfig.n_latent,
        fusion: str = ModuleConfig.fusion,
        n_hidden: int = ModuleConfig.n_hidden,
        n_layers: int = ModuleConfig.n_layers,
        layer_norm: bool = ModuleConfig.layer_norm,
        dropout_rate: float = ModuleConfig.dropout_rate,
        embedding_dim: int = ModuleConfig.embedding_dim,
        dispersion: str = ModuleConfig.dispersion,
        heteroscedastic: bool = ModuleConfig.heteroscedastic,
        batch_mmd_weight: float = ModuleConfig.batch_mmd_weight,
        modality_mmd_weight: float = ModuleConfig.modality_mmd_weight,
        modality_dropout: float = ModuleConfig.modality_dropout,
        modality_weights: dict[str, float] | tuple = ModuleConfig.modality_weights,
        seed: int = DEFAULT_SEED,
    ):
        architecture = {k: v for k, v in locals().items() if k not in ("self", "mdata", "seed")}
        check_integer("seed", seed, 0)
        registry = read_setup(mdata)
        if registry is None:
            raise ValueError(
                "this MuData was not set up: call PoEVAE.setup_mudata(mdata, likelihoods={...}) first "
                "(the setup is kept in mdata.uns, and travels with copies and h5mu files)"
            )
        host = read_data(mdata, registry, validate=False)
        config = ModuleConfig.for_registry(registry, **architecture)
        module = config.build(seed)
        module.set_data_scales(data_scales(host, registry))
        self._assemble(registry, module, config, seed, host=host, mdata=mdata)

    def _assemble(
        self,
        registry: Registry,
        module: PoEModule,
        config: ModuleConfig,
        seed: int,
        host: HostData | None = None,
        mdata=None,
        history=None,
        frozen=False,
    ):
        self.registry = registry
        self.module = module
        self.module_config = config
        self.seed = seed
        self._host: HostData | None = host
        self.mdata = mdata
        self._history: list[dict] = list(history or [])
        self._frozen_reference = frozen
        self.calibration: Calibration | None = None  # set by spatial_mg.pipeline.train_model, or by hand
        if frozen:
            module.freeze_reference()
        return self

    def __repr__(self) -> str:
        mods = ", ".join(f"{n}: {e.likelihood} x {len(e.features)}" for n, e in self.registry.modalities.items())
        state = "trained" if self._history else "untrained"
        return f"PoEVAE({mods}; n_latent={self.module_config.n_latent}, fusion={self.module_config.fusion!r}; {state})"

    # --- setup -------------------------------------------------------------------------
    @classmethod
    def setup_mudata(
        cls,
        mdata,
        likelihoods: dict[str, str] | None = None,
        batch_key: str | None = None,
        layers: dict[str, str | None] | None = None,
        categorical_covariate_keys: list[str] | None = None,
        mask_keys: dict[str, str] | None = None,
        mmd_key: str | None = None,
        *,
        spatial_context: dict[str, float] | None = None,
        spatial_key: str = "spatial",
        modalities: dict[str, str] | None = None,
    ) -> None:
        """Record which modalities to model and how, after checking every value once.

        A cell *has* a modality when it is in that modality's AnnData (MuData's
        ``obsmap``) and, if ``mask_keys`` names a boolean obs column for the modality,
        that column is True. A missing modality is never inferred from an all-zero row:
        such a row is observed data (zero counts). For an absent modality the expert
        leaves the posterior and the likelihood is masked.

        The record is written to ``mdata.uns["_spatial_mg_setup"]`` (a JSON string), the
        one change setup makes to ``mdata`` (as scvi-tools keeps its registry in ``uns``):
        copies of ``mdata`` and h5mu files of it stay set up. :class:`PoEVAE` reads it and
        does not check the values again; set up again after changing the data.

        Parameters
        ----------
        mdata
            MuData; cells may have any subset of the modalities (mosaic data).
        likelihoods
            Modality name -> likelihood: ``"nb"`` (raw counts), ``"gaussian"``
            (intensities, CLR proteins; standardised per feature inside the model and
            returned in the input units), ``"bernoulli"`` (binarised ATAC). For paired
            Visium and MSI: :data:`spatial_mg._constants.PAIRED_LIKELIHOODS`.
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
        spatial_context
            Modality name -> radius in micrometres (e.g. ``{"rna": 150.0}``: a Visium spot
            and its six neighbours): that modality's encoder also reads the mean of the
            spots within the radius of each spot, in its section (spots of different
            ``batch_key`` groups are never neighbours), computed the same way for every
            query. Needs ``obsm[spatial_key]`` in micrometres; leave it None for
            single-cell data. The decoder still models each spot's own values.
        spatial_key
            The ``obsm`` key of the spot coordinates (micrometres) for ``spatial_context``.
        modalities
            Deprecated name of ``likelihoods``.

        Notes
        -----
        Obs columns are read from ``mdata.obs``, else pooled from the modalities' obs.
        Features are recorded in order; later data are aligned to them by name.
        """
        if modalities is not None:
            if likelihoods is not None:
                raise TypeError("give likelihoods= alone (modalities= is its deprecated name), not both")
            warnings.warn(
                "setup_mudata(modalities=...) is deprecated; pass the same dict as likelihoods=...",
                FutureWarning,
                stacklevel=2,
            )
            likelihoods = modalities
        if likelihoods is None:
            raise TypeError('setup_mudata needs likelihoods=, e.g. {"rna": "nb", "msi": "gaussian"}')
        registry = build_registry(
            mdata, likelihoods, batch_key, layers, categorical_covariate_keys, mask_keys, mmd_key, spatial_context, spatial_key
        )
        read_data(mdata, registry)  # every value checked here, once: not again at training time
        store_setup(mdata, registry)

    # --- training ----------------------------------------------------------------------
    def train(
        self,
        max_epochs: int | None = TrainingConfig.max_epochs,
        batch_size: int | None = TrainingConfig.batch_size,
        accelerator: str | torch.device = TrainingConfig.accelerator,
        lr: float = TrainingConfig.lr,
        weight_decay: float = TrainingConfig.weight_decay,
        validation_fraction: float = TrainingConfig.validation_fraction,
        early_stopping: bool = TrainingConfig.early_stopping,
        patience: int = TrainingConfig.patience,
        min_delta: float = TrainingConfig.min_delta,
        lr_patience: int | None = TrainingConfig.lr_patience,
        lr_factor: float = TrainingConfig.lr_factor,
        ema_epochs: float | None = TrainingConfig.ema_epochs,
        gradient_clip: float | None = TrainingConfig.gradient_clip,
        kl_warmup_epochs: int | None = TrainingConfig.kl_warmup_epochs,
        kl_weight: float = TrainingConfig.kl_weight,
        checkpoint_dir: str | os.PathLike | None = TrainingConfig.checkpoint_dir,
        checkpoint_every: int = TrainingConfig.checkpoint_every,
        resume: bool = TrainingConfig.resume,
        progress_bar: bool = TrainingConfig.progress_bar,
        seed: int | None = TrainingConfig.seed,
        strategy: str = TrainingConfig.strategy,
        devices: int | None = TrainingConfig.devices,
        chunk_size: int = TrainingConfig.chunk_size,
        traced_elbo: bool = TrainingConfig.traced_elbo,
    ) -> PoEVAE:
        """Fit the model by stochastic variational inference (Adam on the negative ELBO).

        The defaults are :class:`~spatial_mg.model.TrainingConfig`'s.

        Parameters
        ----------
        max_epochs
            None: :func:`~spatial_mg.model.default_max_epochs` of the number of cells
            (fewer epochs on more cells).
        batch_size
            Cells per step (None: the default). Larger batches run faster (on a GPU many
            times faster), and may need a larger ``lr``.
        accelerator
            ``"auto"`` (CUDA if available), ``"cpu"``, ``"gpu"`` or ``"cuda:i"``. The
            whole data set is kept on the device (sparse counts as CSR).
        lr, weight_decay
            Adam settings (weight decay as L2 on the gradient). The defaults go together
            with those of ``batch_size``, ``kl_weight`` and ``modality_dropout``: the best
            of the settings compared by ``benchmarks/prediction_sweep.py`` (figures in
            ``benchmarks/results/model_notes.md``).
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
            and the final weights use the average. It smooths out the wander of the
            weights with the minibatch noise, which on a few thousand cells moves
            predictions as much as a change of seed. None: the optimiser's weights.
        gradient_clip
            Maximum global gradient norm (None: no clipping).
        kl_warmup_epochs
            The KL weight rises linearly to ``kl_weight`` over these epochs; None:
            :func:`~spatial_mg.model.default_kl_warmup_epochs` (a quarter of ``max_epochs``).
        kl_weight
            Final weight of the KL term (1: the ELBO; below 1 a sharper, less regularised
            posterior, as in a beta-VAE; the default, with ``modality_dropout`` 0.5,
            predicted held-out modalities better than 1). The validation loss uses it too.
        checkpoint_dir
            Folder for ``last.ckpt``, written atomically every ``checkpoint_every`` epochs.
        resume
            Continue from the checkpoint in ``checkpoint_dir`` if there is one (same model,
            data and settings), exactly as if training had not stopped.
        progress_bar
            Show a tqdm bar over epochs.
        seed
            Seeds the split, the shuffling and the sampling; None: the model's seed.
        strategy, devices
            ``"ddp"``: data-parallel training on torch.distributed in ``devices`` new local
            processes (gloo on the CPU, NCCL with one GPU per rank), or, with ``devices``
            left out, as one rank of a group launched by ``torchrun``. Every minibatch of
            ``batch_size`` cells is shared out among the ranks and their gradients summed,
            so the steps are those of one process with the same ``batch_size`` (up to the
            order of float sums; the MMD penalties, where weighted, on the minibatch
            gathered from all ranks). Rank 0 writes the checkpoints; the trained weights come back here.
            ``"single"``: this process. ``"auto"``: ``"ddp"`` under torchrun (with more
            than one process) or with ``devices`` > 1, else ``"single"``.
        chunk_size
            Where the data stay on disk (a MuData read with ``backed="r"``): cells read
            from the file and put on the device at a time, in the order of the epoch.
            The minibatches, and so the training, are those of the same data in memory.
            Where the file stores its arrays in large chunks (more than 256 KiB), each
            chunk of cells is read by scanning the file: a larger ``chunk_size`` then
            reads less (memory: about the chunk's non-zeros and dense values).
        traced_elbo
            Compute each step's loss through Pyro traces of the model and guide instead
            of directly from their distributions (:meth:`PoEModule.loss_terms`): the same
            loss and gradients to float rounding, about 10 % slower on a CPU; for checking
            a change to the model against its Pyro definition.

        Returns
        -------
        self, trained; per-epoch losses in :attr:`history`.

        Raises
        ------
        FloatingPointError
            A loss term became NaN; names the term and the epoch and restores the weights
            of the last finished epoch.
        """
        settings = TrainingConfig(**{k: v for k, v in locals().items() if k != "self"})  # each argument is a field
        if self._host is None:
            raise ValueError("this model has no training data (it was loaded); use PoEVAE.load(path, mdata=...)")
        n = self._host.n_obs
        device = _device(settings.accelerator)
        launch = plan(settings.strategy, settings.devices, device)
        group = group_from_environment(device) if launch == "torchrun" else None
        device = device if group is None else group.device
        config = settings.resolve(n, self.seed)
        order = np.random.default_rng(config.seed).permutation(n)
        n_val = int(round(config.validation_fraction * n)) if n >= 20 else 0
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        world = {"single": 1, "spawn": config.devices, "torchrun": None if group is None else group.world_size}[launch]
        check_shardable(len(train_idx), n_val, config.batch_size, config.eval_batch_size, world)
        fingerprint = None if config.checkpoint_dir is None else self._fingerprint(config, device)
        if launch == "spawn":
            if _on_disk(self._host):
                raise ValueError(
                    "strategy='ddp' with devices=N cannot yet hand data on disk (backed) to the processes it starts: "
                    "launch with torchrun (each rank opens the file), or load the data into memory"
                )
            self._train_spawned(config, device, train_idx, val_idx, fingerprint)
            return self
        self.module.to(device)
        data = self._device_data(self._host, device, config.chunk_size)
        val_idx = torch.as_tensor(val_idx, device=device)
        train_idx = torch.as_tensor(train_idx, device=device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            trainer = Trainer(self.module, data, train_idx, val_idx, config, fingerprint, self._history, group=group)
            try:
                trainer.fit()
            finally:  # a failed run keeps the epochs it finished
                self._history = trainer.history
        self.module.eval()
        return self

    def _train_spawned(self, config: TrainingConfig, device: torch.device, train_idx, val_idx, fingerprint) -> None:
        """Train in ``config.devices`` local processes (:func:`~spatial_mg.model._distributed.spawn_training`);
        take rank 0's weights and history, as a single process would have them."""
        payload = {
            "module_config": self.module_config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            "frozen": self._frozen_reference,
            "seed": self.seed,
            "host": self._host,
            "registry": self.registry,
            "train_idx": train_idx,
            "val_idx": val_idx,
            "config": config,
            "fingerprint": fingerprint,
            "history": self._history,
        }
        results = spawn_training(payload, config.devices, device)
        main = results[0]
        for rank, other in enumerate(results[1:], start=1):  # the all-reduce keeps them equal; say so if not
            if any(not torch.equal(main["state_dict"][k], v) for k, v in other["state_dict"].items()):
                raise RuntimeError(f"rank {rank} ended with other weights than rank 0: please report this as a bug")
        self.module.load_state_dict(main["state_dict"])
        self.module.to(device)
        self.module.eval()
        self._history = main["history"]  # a failed run keeps the epochs it finished
        if main["error"] is not None:
            raise main["error"]

    def _fingerprint(self, config: TrainingConfig, device: torch.device) -> dict:
        """What a checkpoint must share with this run to be resumed: the model (setup and
        architecture), the data's content (:meth:`HostData.content_hash`) and the
        settings that change the result, on the same kind of device."""
        model = json.dumps([self.registry.to_json(), self.module_config.to_dict()], default=str)
        return {
            "model": hashlib.sha1(model.encode()).hexdigest(),
            "data": self._host.content_hash(),
            "settings": {**config.result_settings(), "accelerator": device.type},
        }

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch losses per cell (``train_*``, ``val_*``, one column per term), KL weight, seconds."""
        if not self._history:
            return pd.DataFrame()
        return pd.DataFrame(self._history).set_index("epoch")

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    # --- what the model is (scvi-tools' names) ------------------------------------------
    @property
    def is_trained(self) -> bool:
        """Whether the model has trained for at least one epoch (its :attr:`history` has a
        row); a loaded model keeps what it was. A fresh query model of
        :meth:`load_query_data` is not trained."""
        return bool(self._history)

    def view_setup(self, mdata=None) -> None:
        """Print what :meth:`setup_mudata` registered: each modality's likelihood, where its
        values are (``X`` or a layer) and its feature count; the covariates with their
        categories; the batch and MMD keys.

        Parameters
        ----------
        mdata
            Show the setup recorded in this MuData instead of the model's.
        """
        registry = self.registry if mdata is None else read_setup(mdata)
        if registry is None:
            raise ValueError("this MuData was not set up: call PoEVAE.setup_mudata(mdata, likelihoods={...}) first")
        print(describe_setup(registry))

    view_anndata_setup = view_setup  # the name scvi-tools users know

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
        """The modality whose features an AnnData query holds; the error says how far each falls short."""
        names = set(map(str, adata.var_names))
        candidates = {n: e.features for n, e in self.registry.modalities.items() if n != exclude}
        fits = [n for n, features in candidates.items() if set(features) <= names]
        if len(fits) == 1:
            return fits[0]
        if fits:
            raise ValueError(
                f"the query's features include all of those of modalities {fits}: say which one it holds "
                "(modality=... in Python)"
            )
        # the modality it most likely holds, and what it lacks of it
        name, features = max(candidates.items(), key=lambda item: len(names.intersection(item[1])))
        missing = [f for f in features if f not in names]
        raise ValueError(
            f"the query lacks {len(missing)} of the {len(features)} {name!r} features the model was trained on "
            f"({len(features) - len(missing)} overlap; missing e.g. {missing[:5]}): give it the training features "
            "(extra features and another order are fine), e.g. the same gene panel and reference"
        )

    def _device_data(self, host: HostData, device: torch.device, chunk_size: int = TrainingConfig.chunk_size):
        """The data on the device: whole, or a chunk of cells at a time where they stay on disk."""
        if _on_disk(host):
            return ChunkedData(host, self.registry, device, chunk_size)
        return DeviceData(host, self.registry, device)

    def _batches(self, host: HostData, batch_size: int):
        device = self.device
        data = self._device_data(host, device)
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
        check_integer("batch_size", batch_size, 1)
        mdata = _spots_of(mdata, modality)
        host = self._read(mdata, modality)
        self.module.eval()
        out = [self.module.latent_mean(batch, modality) for batch in self._batches(host, batch_size)]
        return torch.cat(out).cpu().numpy()

    @torch.no_grad()
    def get_elbo(self, mdata=None, batch_size: int = 4096, seed: int = 0) -> float:
        """The evidence lower bound (ELBO) per cell: higher is better, as scvi-tools' ``get_elbo``.

        ``E_q(z | x)[log p(x | z)] - KL(q(z | x) || p(z))``, averaged over cells, with the KL
        at full weight (not ``train``'s ``kl_weight``) and without the MMD penalties, in
        evaluation mode (no dropout, every present modality shown to the encoders). A
        modality a cell lacks adds nothing. The expectation is estimated with one latent
        draw per cell, seeded by ``seed`` (repeatable). Its negative is the loss per cell
        that :meth:`train` minimises with ``kl_weight=1`` and no MMD weight.

        Parameters
        ----------
        mdata
            MuData, or AnnData of one modality (default: the training data); covariate
            categories must be known.
        batch_size
            Cells per forward pass.
        seed
            Seed of the latent draws.

        Returns
        -------
        The ELBO per cell, in nats (a float; usually negative, as a log-likelihood of counts is).
        """
        check_integer("batch_size", batch_size, 1)
        host = self._read(mdata, None)
        device = self.device
        self.module.eval()
        total = torch.zeros((), device=device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for batch in self._batches(host, batch_size):
                # groups=None: the batch MMD is no part of the ELBO, so it is not computed
                terms = self.module.loss_terms(dict(batch, groups=None), kl_weight=1.0)
                loss = sum(value for name, value in terms.items() if not name.startswith("mmd_"))
                total += loss * batch["idx"].shape[0]  # terms are means over the batch's cells
        return -float(total) / host.n_obs

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
        interval: float | None = None,
    ) -> ad.AnnData:
        """Posterior-predictive mean (and standard deviation) of ``target`` for each cell.

        The target is predicted from the cell's *other* modalities (its own values, if the
        query has them, are not shown to the encoders): ``p(x_target | x_others) =
        E_q(z | x_others)[p(x_target | z)]``, estimated with ``n_samples`` latent draws.

        Parameters
        ----------
        query
            AnnData of one modality (e.g. RNA only), its SpatialData (e.g. from
            ``spatialdata_io.visium``), or MuData with any subset of the modalities. Features are matched by name: reordered or extra features are
            fine, missing ones are an error. Backed data (``backed="r"``, features in
            the model's order) stay on disk and are read a chunk of cells at a time. Covariate categories must be known (else map
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
        interval
            Also return a central predictive interval covering this share (e.g. 0.9) as
            layers ``"lower"`` and ``"upper"``. With a :attr:`calibration` of ``target``
            (sections held out in turn) the interval and the std are scaled to cover what a
            new section did; without one they are the model's own Gaussian ones, marked
            uncalibrated (``uns["spatial_mg"]["prediction"]["calibrated"]``) with a warning.

        Returns
        -------
        AnnData, query cells x target features: ``X`` the mean in the units trained on
        (counts for ``"nb"``, input units for ``"gaussian"``, probabilities for
        ``"bernoulli"``), ``layers["std"]`` the standard deviation (calibrated where a
        calibration exists; the model's own then in ``layers["std_uncalibrated"]``);
        ``var`` the training features' names and, where the training data had them, their
        ``mz``, ``mz_min``, ``mz_max`` (numeric) and ``gene_ids``.
        """
        if target not in self.registry.modalities:
            raise KeyError(f"unknown target {target!r}; the model has {self.registry.names}")
        check_integer("n_samples", n_samples, 1)
        check_integer("batch_size", batch_size, 1)
        check_number("library_size", library_size, 0, low_open=True, optional=True)
        query = _spots_of(query, modality)
        host = self._read(query, modality, exclude=target)
        device = self.device
        self.module.eval()
        means, stds, n_prior_only = [], [], 0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # one stream over all batches: repeatable, not batch-size-free
            for batch in self._batches(host, batch_size):
                mean, std, prior_only = self.module.posterior_predictive(batch, target, n_samples, normalize, library_size)
                means.append(mean)
                stds.append(std)
                n_prior_only += int(prior_only.sum())
        if n_prior_only:
            warnings.warn(
                f"{n_prior_only} cell(s) have no modality other than '{target}': their prediction is the "
                "prior's (the same population average for all of them)",
                stacklevel=3,  # past torch.no_grad's wrapper, to the caller
            )
        obs = query.obs.reindex(host.obs_names).copy() if hasattr(query, "obs") else pd.DataFrame(index=host.obs_names)
        out = ad.AnnData(
            X=torch.cat(means).cpu().numpy(),
            obs=obs,
            var=self.registry.modalities[target].var(),  # names, and the m/z (gene ids) the training data had
        )
        std = torch.cat(stds).cpu().numpy()
        calibration = self._calibration_of(target)
        if return_std or interval is not None:
            out.layers[STD_LAYER] = std
            if calibration is not None:
                out.layers[UNCALIBRATED_STD_LAYER] = std
                out.layers[STD_LAYER] = (std * calibration.factor(ONE_SIGMA)).astype(std.dtype)
        if interval is not None:
            check_number("interval", interval, 0, 1, low_open=True, high_open=True)
            if calibration is None:
                warnings.warn(
                    f"this model has no calibration of '{target}' across sections (it needs two or more training "
                    "sections: spatial_mg.pipeline.train_model makes one); the interval is the model's own, which "
                    "is too narrow on a new section",
                    stacklevel=3,
                )
                half = float(norm.ppf(0.5 + interval / 2)) * std
            else:
                half = calibration.factor(interval) * std
            out.layers[LOWER_LAYER] = (out.X - half).astype(std.dtype)
            out.layers[UPPER_LAYER] = (out.X + half).astype(std.dtype)
        if not return_std and interval is not None:
            del out.layers[STD_LAYER]
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
                "calibrated": calibration is not None,
                **({"interval": float(interval)} if interval is not None else {}),
                **({"calibration_sections": list(calibration.groups)} if calibration is not None else {}),
            }
        }
        return out

    def _calibration_of(self, target: str) -> Calibration | None:
        """The calibration of ``target``, in the model's feature order, or None."""
        if self.calibration is None or self.calibration.target != target:
            return None
        return self.calibration.for_features(self.registry.modalities[target].features)

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
                    "module_config": self.module_config.to_dict(),
                    "seed": self.seed,
                    "history": self._history,
                    "frozen_reference": self._frozen_reference,
                    "features": {name: list(e.features) for name, e in self.registry.modalities.items()},
                },
                tmp / MODEL_WEIGHTS_FILE,
            )
            (tmp / MODEL_REGISTRY_FILE).write_text(self.registry.to_json())
            if self.calibration is not None:
                (tmp / MODEL_CALIBRATION_FILE).write_text(json.dumps(self.calibration.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike, mdata=None, accelerator: str = "auto") -> PoEVAE:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path
            The model folder.
        mdata
            Optional data to attach (checked against the saved registry; left unchanged),
            for further training or as the default of :meth:`get_latent_representation`.
        accelerator
            Device to load onto.

        Notes
        -----
        Reads both formats :meth:`save` has written: ``model.pt`` with ``module_config``
        (format 2) and with ``module_kwargs`` (format 1). The registry must describe the
        weights: the same modalities and feature counts and, where ``model.pt`` records
        the feature names (models saved since it does), the same names in the same order.
        """
        path = Path(path)
        weights = path / MODEL_WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"no saved PoEVAE in '{path}' ({MODEL_WEIGHTS_FILE} missing)")
        try:
            saved = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds (zip, pickle, EOF) for a damaged file
            # torch's own text suggests weights_only=False, which would run code from the file:
            # name the failure, not its advice
            raise ValueError(
                f"'{weights}' cannot be read as the weights of a saved PoEVAE ({type(err).__name__}): it is "
                "damaged, truncated or another kind of file; copy the model folder again, or save the model again"
            ) from err
        version = saved.get("format_version") if isinstance(saved, dict) else None
        if version not in (1, _FORMAT_VERSION):
            raise ValueError(
                f"'{weights}' has format version {version}; this spatial_mg reads 1 to {_FORMAT_VERSION}: "
                "update spatial_mg to load it"
            )
        registry = read_saved_registry(path / MODEL_REGISTRY_FILE)
        config = ModuleConfig.from_dict(saved["module_config" if version >= 2 else "module_kwargs"])
        check_registry_matches(registry, config.modalities, saved.get("features"), path / MODEL_REGISTRY_FILE, weights)
        module = config.build(saved["seed"])
        module.load_state_dict(saved["state_dict"])
        module.to(_device(accelerator)).eval()
        host = None if mdata is None else read_data(mdata, registry)  # new to this model: validated
        model = cls.__new__(cls)
        model._assemble(registry, module, config, saved["seed"], host, mdata, saved["history"], saved["frozen_reference"])
        model.calibration = _read_calibration(path / MODEL_CALIBRATION_FILE)
        return model

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
        query_registry = ref.registry.with_categories_of(query_mdata)
        config = ref.module_config.for_query(query_registry, query_in_train)
        module = config.build(ref.seed)
        module.copy_reference(ref.module)
        module.to(ref.device)
        mod = None if hasattr(query_mdata, "mod") else ref._anndata_modality(query_mdata, None)
        host = read_data(query_mdata, query_registry, what="query", anndata_modality=mod, require_all=False)
        if query_in_train:
            ref_data = reference_mdata if reference_mdata is not None else ref.mdata
            if ref_data is None:
                raise ValueError("query_in_train needs the reference data: pass reference_mdata=...")
            host = read_data(ref_data, query_registry, what="reference data", require_all=False).concat(host)
        model = cls.__new__(cls)
        return model._assemble(query_registry, module, config, ref.seed, host, query_mdata, frozen=not query_in_train)


def _on_disk(host: HostData | None) -> bool:
    return host is not None and any(isinstance(m.matrix, DiskMatrix) for m in host.modalities.values())


def _spots_of(data, modality: str | None):
    """A SpatialData section as the AnnData of its spots (or of its MSI pixels for ``modality="msi"``); other data as given."""
    from ..io._spatialdata import as_anndata, is_spatialdata

    if data is None or not is_spatialdata(data):
        return data
    return as_anndata(data, "msi" if modality == "msi" else "rna", load_images=False)


def _read_calibration(path: Path) -> Calibration | None:
    """The calibration saved beside a model, or None where there is none."""
    if not path.is_file():
        return None
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"'{path}' is not a readable calibration ({err}); delete it or save the model again") from err


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
