"""The PoE-VAE's settings and their defaults, in one place.

:class:`ModuleConfig` fixes the module's architecture (from the data's setup and the
user's choices) and is saved with the weights; :class:`TrainingConfig` holds every
setting of :meth:`PoEVAE.train`. Their class attributes are the defaults that
``PoEVAE``, its ``train`` and the command line all read, e.g. ``TrainingConfig.batch_size``.

Importing this module imports neither torch nor pandas, so the command line can read the
defaults for its help without that cost.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ._module import PoEModule
    from ._registry import Registry

DEFAULT_SEED = 0  # of the weight initialisation and, unless train() gets another, of training


# --- range checks -----------------------------------------------------------------------
# A setting out of range (no epochs, an empty batch, a zero-width latent) would otherwise
# give an untrained or broken model without a word; each is refused where it is given.
def check_integer(name: str, value, minimum: int, *, optional: bool = False) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer >= ``minimum``
    (or None, where ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        also = " (or None)" if optional else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{also}, not {value!r}")


def check_number(
    name: str,
    value,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a finite number between
    ``low`` and ``high`` (open or closed ends; no ``high``: unbounded above), or None
    where ``optional``."""
    if value is None and optional:
        return
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    inside = number and (value > low if low_open else value >= low)
    if number and high is not None:
        inside = inside and (value < high if high_open else value <= high)
    if not inside:
        if high is None:
            valid = f"{'>' if low_open else '>='} {low}"
        else:
            valid = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        also = " (or None)" if optional else ""
        raise ValueError(f"{name} must be a number {valid}{also}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class ModuleConfig:
    """Everything that builds a :class:`PoEModule`: the data's shape and the architecture.

    The fields are :class:`PoEModule`'s arguments (see there and :class:`PoEVAE` for their
    meaning). ``modalities``, ``covariate_sizes``, ``batch_covariate``, ``n_mmd_groups``
    and ``context_modalities`` come from the setup (:meth:`for_registry`); the others are
    the user's choices, with the defaults of :class:`PoEVAE`.
    """

    # field order is that of the first saved format's ``module_kwargs`` (and of the
    # checkpoint fingerprint), so the dictionary of a model is the same in both
    modalities: tuple[tuple[str, str, int], ...]
    n_latent: int = 16
    n_hidden: int = 128
    n_layers: int = 2
    layer_norm: bool = True
    dropout_rate: float = 0.1
    covariate_sizes: tuple[tuple[int, int], ...] = ()
    embedding_dim: int = 8
    batch_covariate: int | None = None
    dispersion: str = "feature"
    heteroscedastic: bool = False
    fusion: str = "poe"
    batch_mmd_weight: float = 0.0
    n_mmd_groups: int = 0
    modality_mmd_weight: float = 0.0
    modality_dropout: float = 0.5
    context_modalities: tuple[str, ...] = ()
    modality_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        check_integer("n_latent", self.n_latent, 1)
        check_integer("n_hidden", self.n_hidden, 1)
        check_integer("n_layers", self.n_layers, 0)
        check_number("dropout_rate", self.dropout_rate, 0, 1, high_open=True)
        check_integer("embedding_dim", self.embedding_dim, 1)
        check_number("batch_mmd_weight", self.batch_mmd_weight, 0)
        check_number("modality_mmd_weight", self.modality_mmd_weight, 0)
        check_number("modality_dropout", self.modality_dropout, 0, 1)
        if self.modality_weights is None or isinstance(self.modality_weights, Mapping):  # as users give it: a dict
            given = dict(self.modality_weights or {})
            object.__setattr__(self, "modality_weights", tuple((str(k), v) for k, v in given.items()))
        names = [m[0] for m in self.modalities]
        for name, weight in self.modality_weights:
            if name not in names:
                raise KeyError(f"modality_weights names '{name}', which is not a modality of the setup {names}")
            check_number(f"modality_weights['{name}']", weight, 0, low_open=True)

    @classmethod
    def for_registry(cls, registry: Registry, **architecture) -> ModuleConfig:
        """The config of a new model of the data that ``registry`` describes."""
        return cls(
            modalities=tuple((n, e.likelihood, len(e.features)) for n, e in registry.modalities.items()),
            covariate_sizes=tuple((len(c), 0) for c in registry.covariates.values()),
            batch_covariate=0 if registry.batch_key is not None else None,
            n_mmd_groups=len(registry.mmd_categories),
            context_modalities=tuple(registry.spatial_context),
            **architecture,
        )

    def for_query(self, registry: Registry, query_in_train: bool = False) -> ModuleConfig:
        """scArches surgery: the config with the categories of ``registry`` (the reference's
        extended by the query's, :meth:`Registry.with_categories_of`).

        Every category the reference had (its reference and new rows) becomes a reference
        row; categories beyond them become new rows, alone trainable when the reference is
        frozen. ``query_in_train``: all rows are reference rows (everything trains).
        """
        sizes = []
        for (n_ref, n_new), categories in zip(self.covariate_sizes, registry.covariates.values()):
            known, total = n_ref + n_new, len(categories)
            sizes.append((total, 0) if query_in_train else (known, total - known))
        return replace(self, covariate_sizes=tuple(sizes), n_mmd_groups=len(registry.mmd_categories))

    def build(self, seed: int) -> PoEModule:
        """The module, its weights initialised from ``seed`` (the global generator is left
        as it was)."""
        import torch  # here, not at the top: see the module's docstring

        from ._module import PoEModule

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return PoEModule(**{f.name: getattr(self, f.name) for f in fields(self)})

    def to_dict(self) -> dict:
        """JSON-safe (tuples as lists); :meth:`from_dict` reads it back. Without a spatial
        context or modality weights their keys are left out, so models and checkpoints of
        before them read alike."""
        out = {f.name: _lists(getattr(self, f.name)) for f in fields(self)}
        for key in ("context_modalities", "modality_weights"):
            if not getattr(self, key):
                del out[key]
        return out

    @classmethod
    def from_dict(cls, values: dict) -> ModuleConfig:
        """From :meth:`to_dict`, or from the ``module_kwargs`` of the first saved format
        (the same keys)."""
        values = dict(values)
        values["modalities"] = tuple(tuple(m) for m in values["modalities"])
        values["covariate_sizes"] = tuple(tuple(c) for c in values.get("covariate_sizes", ()))
        values["context_modalities"] = tuple(values.get("context_modalities", ()))
        values["modality_weights"] = tuple((str(k), float(w)) for k, w in values.get("modality_weights", ()))
        return cls(**values)


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


# --- training ---------------------------------------------------------------------------
# TrainingConfig fields that leave what training computes alone: how long it runs
# (resuming to train longer is what a checkpoint is for), where checkpoints go, what is
# shown. ``accelerator`` is left out because "auto" and "cpu" can name the same device:
# the device itself is compared instead.
# ``strategy`` and ``devices`` too: N ranks take the steps one process takes with the same
# minibatches (``_distributed``), so a checkpoint resumes on any number of ranks; and
# ``chunk_size``: data on disk give the minibatches of the same data in memory (``_disk``).
OUTSIDE_RESULT = (
    "max_epochs", "accelerator", "checkpoint_dir", "checkpoint_every", "resume", "progress_bar", "strategy", "devices",
    "chunk_size", "traced_elbo",  # traced_elbo: the same loss, to float rounding
)


def default_max_epochs(n_obs: int) -> int:
    """``min(400, round(400 * 20000 / n_obs))``, at least 20: about 3 million cell visits
    (400 epochs of 20,000 cells), fewer epochs on more cells."""
    return max(20, min(400, round(400 * 20000 / n_obs)))


def default_kl_warmup_epochs(max_epochs: int) -> int:
    """A quarter of the epochs."""
    return max_epochs // 4


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of :meth:`PoEVAE.train`, with its default (see there for the meaning).

    None for ``max_epochs``, ``kl_warmup_epochs``, ``seed`` (and ``batch_size``) means the
    rule of :func:`default_max_epochs`, of :func:`default_kl_warmup_epochs`, the model's
    seed (and the default batch size); :meth:`resolve` applies them.
    """

    max_epochs: int | None = None
    batch_size: int | None = 128
    accelerator: str | torch.device = "auto"
    lr: float = 3e-3
    weight_decay: float = 1e-2
    validation_fraction: float = 0.1
    early_stopping: bool = True
    patience: int = 20
    min_delta: float = 0.0
    lr_patience: int | None = None
    lr_factor: float = 0.5
    ema_epochs: float | None = 20.0
    gradient_clip: float | None = 10.0
    kl_warmup_epochs: int | None = None
    kl_weight: float = 0.5
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int = 1
    resume: bool = False
    progress_bar: bool = True
    seed: int | None = None
    strategy: str = "auto"
    devices: int | None = None
    chunk_size: int = 16384
    eval_batch_size: int = 4096  # cells per validation step (no gradients: larger is fine)
    traced_elbo: bool = False

    def __post_init__(self) -> None:
        check_integer("max_epochs", self.max_epochs, 1, optional=True)
        check_integer("batch_size", self.batch_size, 1, optional=True)
        check_number("lr", self.lr, 0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0)
        check_number("validation_fraction", self.validation_fraction, 0, 1, high_open=True)
        check_integer("patience", self.patience, 1)
        check_number("min_delta", self.min_delta, 0)
        check_integer("lr_patience", self.lr_patience, 0, optional=True)
        check_number("lr_factor", self.lr_factor, 0, 1, low_open=True, high_open=True)
        check_number("ema_epochs", self.ema_epochs, 0, low_open=True, optional=True)
        check_number("gradient_clip", self.gradient_clip, 0, low_open=True, optional=True)
        check_integer("kl_warmup_epochs", self.kl_warmup_epochs, 0, optional=True)
        check_number("kl_weight", self.kl_weight, 0)
        check_integer("checkpoint_every", self.checkpoint_every, 1)
        check_integer("seed", self.seed, 0, optional=True)
        check_integer("eval_batch_size", self.eval_batch_size, 1)
        if self.strategy not in ("auto", "single", "ddp"):
            raise ValueError(f"strategy must be 'auto', 'single' or 'ddp', not {self.strategy!r}")
        check_integer("devices", self.devices, 1, optional=True)
        check_integer("chunk_size", self.chunk_size, 1)

    def result_settings(self) -> dict:
        """The settings that change what training computes (all fields but those of
        :data:`OUTSIDE_RESULT`), by name; of a resolved config, as a checkpoint keeps them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in OUTSIDE_RESULT}

    def resolve(self, n_obs: int, model_seed: int) -> TrainingConfig:
        """Every None replaced by its rule for ``n_obs`` cells; numbers and paths in the
        types the training loop and its checkpoint keep."""
        max_epochs = int(self.max_epochs if self.max_epochs is not None else default_max_epochs(n_obs))
        warmup = self.kl_warmup_epochs
        return replace(
            self,
            max_epochs=max_epochs,
            batch_size=int(self.batch_size or TrainingConfig.batch_size),
            accelerator=str(self.accelerator),
            ema_epochs=None if self.ema_epochs is None else float(self.ema_epochs),
            kl_warmup_epochs=default_kl_warmup_epochs(max_epochs) if warmup is None else int(warmup),
            kl_weight=float(self.kl_weight),
            checkpoint_dir=None if self.checkpoint_dir is None else str(self.checkpoint_dir),
            seed=model_seed if self.seed is None else int(self.seed),
        )
