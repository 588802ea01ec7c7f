"""The training loop: minibatches by index on the device, Adam, clipping, warm-up, stopping.

Per step nothing leaves the device: losses are summed into device tensors and read once
per epoch, which is also where NaN is detected, early stopping decides, and a checkpoint
(weights, optimiser, random states, history) is written atomically, so a crash loses no
finished epoch and :func:`fit` can resume from it exactly.

With ``ema_epochs`` set, an exponential moving average of the weights (Polyak averaging)
follows the optimiser; validation, early stopping and the weights kept are the average's.
Why: on small data sets (a few thousand spots) the weights at any one step still wander
with the minibatch noise, and held-out predictions of two seeds differ by more than the
PoE's margin over ridge regression; the average smooths that wander out at no cost.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from .._atomic import atomic_file
from .._constants import CHECKPOINT_FILE
from ._config import TrainingConfig
from ._data import DeviceData
from ._draws import rows_of_batch
from ._flat import FlatParameters
from ._module import PoEModule


def _adam(params: list[torch.nn.Parameter], config: TrainingConfig) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where torch has one for the device (CUDA; CPU
    from torch 2.4): a step of many small parameter updates costs several ms on a CPU."""
    try:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


class TrainingDiverged(FloatingPointError):
    """A loss term became NaN or infinite."""


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _atomic_save(obj, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def _refuse_another_run(saved, current: dict, path: Path) -> None:
    """Raise, naming what differs, unless checkpoint ``path`` (its fingerprint ``saved``)
    was written by a run of this model on these data with these settings."""
    afresh = f"or use another checkpoint_dir (or delete '{path}') to start afresh"
    if not isinstance(saved, dict):  # a hash alone: written before the parts were kept
        raise ValueError(
            f"checkpoint '{path}' was written by an older spatial_mg that did not record its data and "
            f"settings, so resuming from it cannot be checked; train again {afresh}"
        )
    if saved.get("model") != current["model"]:
        raise ValueError(
            f"checkpoint '{path}' was written for another model (other setup or architecture); resume "
            f"with the model it was trained with, {afresh}"
        )
    if saved.get("data") != current["data"]:
        raise ValueError(
            f"checkpoint '{path}' was written for other data (the same model, but other values, cells, "
            f"covariates or number of cells); resume with the data it was trained on, {afresh}"
        )
    old, new = saved.get("settings", {}), current["settings"]
    differ = [k for k in dict.fromkeys([*new, *old]) if k not in old or k not in new or old[k] != new[k]]
    if differ:
        listed = "; ".join(f"{k} {old.get(k)!r} in the checkpoint, {new.get(k)!r} now" for k in differ)
        rule = (
            " (kl_warmup_epochs=None follows max_epochs: pass the checkpoint's number to train longer)"
            if "kl_warmup_epochs" in differ
            else ""
        )
        raise ValueError(
            f"checkpoint '{path}' was written with other training settings ({listed}){rule}; "
            f"pass the checkpoint's values to resume, {afresh}"
        )


class Trainer:
    """Fits a :class:`PoEModule` to a :class:`DeviceData`.

    Parameters
    ----------
    module
        The module, already on ``data.device``.
    data
        The whole data set on the device, or the same read from disk a chunk at a time
        (:class:`~spatial_mg.model._chunked.ChunkedData`).
    train_idx, val_idx
        Cell indices (device tensors) of the training and validation sets.
    config
        The settings, resolved (:meth:`TrainingConfig.resolve`: no None where a rule applies).
    fingerprint
        Identifies model, data and the settings that change the result
        (``PoEVAE._fingerprint``); a checkpoint with another is refused, naming what
        differs. None: no checkpoints are written.
    history
        Rows of earlier training, continued.
    group
        This process's rank in data-parallel training (:mod:`._distributed`), or None
        (one process). Every rank gets the whole data and the same indices, weights and
        random state; each computes its rows of every minibatch, gradients and loss sums
        are summed across ranks, and rank 0 alone writes checkpoints.
    """

    def __init__(
        self,
        module: PoEModule,
        data: DeviceData,
        train_idx: torch.Tensor,
        val_idx: torch.Tensor,
        config: TrainingConfig,
        fingerprint: dict | None,
        history: list[dict] | None = None,
        group=None,  # a _distributed.Group (not imported: _distributed imports this module to spawn ranks)
    ):
        self.module, self.data, self.config = module, data, config
        self.group = group
        self.train_idx, self.val_idx = train_idx, val_idx
        self.fingerprint = fingerprint
        self.history = list(history or [])
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (a query without new categories adds none)")
        self.flat = FlatParameters(params)
        self.optimizer = _adam([self.flat.flat], config)
        self.ema = self.flat.flat.detach().clone() if config.ema_epochs is not None else None
        if self.ema is not None:  # the decay for a horizon of ema_epochs, in steps
            horizon = config.ema_epochs * max(1, math.ceil(train_idx.shape[0] / config.batch_size))
            self.ema_decay = math.exp(-1.0 / max(horizon, 1.0))
        self.steps = 0  # optimiser steps taken (the average's warm-up)
        self.scheduler = None
        if config.lr_patience is not None:  # the monitored loss, once per epoch (after warm-up)
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.lr * 1e-2
            )
        self.generator = torch.Generator(device=data.device)
        self.generator.manual_seed(config.seed)
        self.start_epoch = 0
        self.best = math.inf
        self.wait = 0
        self.best_state: dict | None = None
        self.stopped = False

    # --- checkpoints -------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        d = self.config.checkpoint_dir
        return None if d is None else Path(d) / CHECKPOINT_FILE

    def _state(self, epoch: int) -> dict:
        cuda = self.data.device.type == "cuda"
        return {
            "fingerprint": self.fingerprint,
            "epochs_done": epoch,
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "history": self.history,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.data.device) if cuda else None,
            "generator": self.generator.get_state(),
            "early_stopping": {"best": self.best, "wait": self.wait, "stopped": self.stopped},
            "best_state": self.best_state,
            "ema": self.ema,
            "steps": self.steps,
            "config": asdict(self.config),
        }

    def _restore(self, path: Path) -> None:
        try:
            ckpt = torch.load(path, map_location=self.data.device, weights_only=True)
        except Exception as err:  # a damaged file; torch's own advice (weights_only=False) would run its code
            raise ValueError(
                f"checkpoint '{path}' cannot be read ({type(err).__name__}): it is damaged or truncated; "
                "delete it to start afresh, or resume from a copy"
            ) from err
        if not isinstance(ckpt, dict):
            raise ValueError(f"checkpoint '{path}' holds no spatial_mg checkpoint; delete it to start afresh")
        _refuse_another_run(ckpt.get("fingerprint"), self.fingerprint, path)
        self.module.load_state_dict(ckpt["module"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = ckpt["history"]
        torch.set_rng_state(ckpt["rng_cpu"].cpu())
        if ckpt["rng_cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"].cpu(), self.data.device)
        self.generator.set_state(ckpt["generator"].cpu())
        es = ckpt["early_stopping"]
        self.best, self.wait, self.stopped = es["best"], es["wait"], es["stopped"]
        self.best_state = ckpt["best_state"]
        if self.ema is not None:  # the fingerprint's settings made sure the checkpoint has one
            self.ema.copy_(ckpt["ema"])
        self.steps = ckpt.get("steps", 0)
        self.start_epoch = ckpt["epochs_done"]

    # --- epochs ------------------------------------------------------------------------
    def kl_weight(self, epoch: int) -> float:
        warm, final = self.config.kl_warmup_epochs, self.config.kl_weight
        return final if warm <= 0 else final * min(1.0, (epoch + 1) / warm)

    def _run(self, idx: torch.Tensor, batch_size: int, kl_weight: float, train: bool):
        """Sum over cells of each loss term, and the first step at which each turned
        non-finite (-1: never), as device tensors: no host sync."""
        sums: dict[str, torch.Tensor] = {}
        first_bad: dict[str, torch.Tensor] = {}
        n_batches = max(1, math.ceil(idx.shape[0] / batch_size))
        if hasattr(self.data, "begin_pass"):  # data on disk: read ahead in this order
            self.data.begin_pass(idx)
        for step, chunk in enumerate(torch.tensor_split(idx, n_batches)):
            n_global = chunk.shape[0]
            if self.group is None:
                terms = self.module.loss_terms(self.data.batch(chunk), kl_weight, traced=self.config.traced_elbo)
            else:  # this rank's rows, with the draws of the whole minibatch
                start, stop = self.group.rows(n_global)
                chunk = chunk[start:stop]
                with rows_of_batch(start, stop, n_global, self.group.gather_rows):
                    terms = self.module.loss_terms(self.data.batch(chunk), kl_weight, traced=self.config.traced_elbo)
            if train:
                loss = sum(terms.values())
                if self.group is not None:  # summed over ranks: the mean over the global minibatch
                    loss = loss * (chunk.shape[0] / n_global)
                self.flat.zero_grad()
                loss.backward()
                if self.group is not None:
                    self.group.sum_(self.flat.flat.grad)
                if self.config.gradient_clip:
                    self.flat.clip_grad_norm_(self.config.gradient_clip)
                self.optimizer.step()
                self._average()
            for k, v in terms.items():
                v = v.detach()
                bad = first_bad.get(k, torch.full((), -1.0, device=v.device))
                first_bad[k] = torch.where((bad < 0) & ~torch.isfinite(v), float(step), bad)
                sums[k] = sums[k] + v * chunk.shape[0] if k in sums else v * chunk.shape[0]
        return sums, first_bad

    def _average(self) -> None:
        """One step of the weight average. The decay is capped by ``(1 + t) / (10 + t)``
        after ``t`` steps (TensorFlow's rule): the average spans at most about the last
        tenth of the steps, so the first, untrained weights fade out instead of weighing
        on it for ``ema_epochs``."""
        self.steps += 1
        if self.ema is None:
            return
        decay = min(self.ema_decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            self.ema.lerp_(self.flat.flat, 1.0 - decay)

    @contextmanager
    def _averaged(self):
        """The module holds the averaged weights inside the block (no-op without averaging)."""
        if self.ema is None:
            yield
            return
        live = self.flat.flat.detach().clone()
        with torch.no_grad():
            self.flat.flat.copy_(self.ema)
        try:
            yield
        finally:
            with torch.no_grad():
                self.flat.flat.copy_(live)

    def _epoch(self, epoch: int) -> dict:
        cfg = self.config
        t0 = time.perf_counter()
        kl_weight = self.kl_weight(epoch)
        self.module.train()
        order = self.train_idx[torch.randperm(self.train_idx.shape[0], generator=self.generator, device=self.data.device)]
        train_sums, first_bad = self._run(order, cfg.batch_size, kl_weight, train=True)
        val_sums = {}
        if self.val_idx.shape[0]:
            self.module.eval()
            with torch.no_grad(), self._averaged():
                val_sums, _ = self._run(self.val_idx, cfg.eval_batch_size, cfg.kl_weight, train=False)
        keys = [("train", k) for k in train_sums] + [("val", k) for k in val_sums]
        sums = torch.stack([*train_sums.values(), *val_sums.values()])
        steps = torch.stack([*first_bad.values()])
        if self.group is not None:  # every rank gets the same row, so early stopping agrees
            self.group.sum_(sums)
            steps = self.group.min_(torch.where(steps < 0, math.inf, steps))  # the first step any rank failed
            steps = torch.where(torch.isinf(steps), -1.0, steps)
        values = torch.cat([sums, steps]).tolist()  # the one sync
        row = {"epoch": epoch + 1, "kl_weight": kl_weight, "lr": self.optimizer.param_groups[0]["lr"]}
        n = {"train": self.train_idx.shape[0], "val": self.val_idx.shape[0]}
        for (split, k), v in zip(keys, values):
            row[f"{split}_{k}"] = v / n[split]
        if not all(map(math.isfinite, values)):
            bad_steps = {k: s for k, s in zip(first_bad, values[len(keys) :]) if s >= 0}
            culprit = min(bad_steps, key=bad_steps.get) if bad_steps else next(k for (_, k), v in zip(keys, values) if not math.isfinite(v))
            raise TrainingDiverged(
                f"loss term '{culprit}' became NaN or infinite in epoch {epoch + 1}"
                f"{f' (step {int(bad_steps[culprit]) + 1})' if culprit in bad_steps else ' (validation)'}; "
                f"the weights are restored to the end of epoch {epoch}. "
                "Try a lower learning rate (lr), gradient_clip, or check the input scale."
            )
        for split in ("train", "val"):
            parts = [row[f"{split}_{k}"] for s, k in keys if s == split]
            if parts:
                row[f"{split}_loss"] = sum(parts)
        row["seconds"] = time.perf_counter() - t0
        return row

    def _early_stop(self, epoch: int, row: dict) -> None:
        cfg = self.config
        monitor = row.get("val_loss", row["train_loss"])
        if epoch + 1 < cfg.kl_warmup_epochs:  # the objective still changes during warm-up
            return
        if self.scheduler is not None:
            self.scheduler.step(monitor)
        if monitor < self.best - cfg.min_delta:
            self.best, self.wait = monitor, 0
            if cfg.early_stopping:
                with self._averaged():
                    self.best_state = _snapshot(self.module)
        else:
            self.wait += 1
            if cfg.early_stopping and self.wait >= cfg.patience:
                self.stopped = True

    def fit(self) -> list[dict]:
        """Train until ``max_epochs`` or early stopping; return the history rows."""
        cfg = self.config
        path = self.checkpoint_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if cfg.resume and path.exists():
                self._restore(path)  # every rank reads it: checkpoint_dir must be one they all see
        main = self.group is None or self.group.is_main
        if self.group is not None:  # start from rank 0's weights (the same unless something differs)
            with torch.no_grad():
                self.group.from_main_(self.flat.flat)
                if self.ema is not None:
                    self.group.from_main_(self.ema)
        bar = None
        if cfg.progress_bar and main:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.max_epochs, initial=self.start_epoch, desc="Training", unit="epoch")
        last_good = _snapshot(self.module)
        try:
            epoch = self.start_epoch
            while epoch < cfg.max_epochs and not self.stopped:
                try:
                    row = self._epoch(epoch)
                except TrainingDiverged:
                    self.module.load_state_dict(last_good)
                    raise
                self.history.append(row)
                self._early_stop(epoch, row)
                last_good = _snapshot(self.module)
                epoch += 1
                if main and path is not None and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.max_epochs or self.stopped):
                    _atomic_save(self._state(epoch), path)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{row[k]:.4g}" for k in ("train_loss", "val_loss") if k in row})
        finally:
            if bar is not None:
                bar.close()
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        elif self.ema is not None:
            with torch.no_grad():
                self.flat.flat.copy_(self.ema)
        return self.history
