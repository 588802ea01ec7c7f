"""Data-parallel training on torch.distributed: the process group, the launch, the shards.

Two launches lead to the same training loop (:class:`~spatial_mg.model._training.Trainer`
with a :class:`Group`):

- ``PoEVAE.train(strategy="ddp", devices=N)`` starts ``N`` local processes with
  ``torch.multiprocessing`` (:func:`spawn_training`), each joining a process group (gloo
  on CPUs, NCCL on GPUs) over a free local port; rank 0's weights and history come back.
- ``torchrun --nproc-per-node N -m spatial_mg.cli train ...`` (also multi-node, through
  torchrun's rendezvous) starts the processes itself; :func:`group_from_environment`
  reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` and joins the group.

How the ranks share the work: every rank holds the same data, the same weights and the
same random state. Each epoch all of them shuffle the training cells alike (a shared
seed), cut the order into the same global minibatches, and each computes the loss of
its contiguous share of every minibatch (:meth:`Group.rows`), drawing the minibatch's
noise whole and keeping its rows (:mod:`~spatial_mg.model._draws`). Each rank's loss is
weighted by its share of the minibatch and the gradients are summed by one
``all_reduce`` on the flat gradient buffer, which gives the gradient of the mean over the
global minibatch: ``N`` ranks take the steps one process takes with the same batch, up
to the order of float sums. Loss sums (and so validation and early stopping) are summed
across ranks once per epoch; only rank 0 writes checkpoints.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from .._errors import DeviceUnavailableError

STRATEGIES = ("auto", "single", "ddp")
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_TIMEOUT = timedelta(minutes=30)  # a rank that waits longer on the others gives up
_OWN_GROUP = False  # whether this process initialised the default group (and so ends it)


@dataclass(frozen=True)
class Group:
    """This process's place in a process group of data-parallel training.

    Parameters
    ----------
    rank, world_size
        This process's rank and the number of processes.
    device
        The device this rank trains on.
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints and shows progress."""
        return self.rank == 0

    def rows(self, n: int) -> tuple[int, int]:
        """This rank's contiguous rows ``start, stop`` of a minibatch of ``n`` cells (the
        first ``n % world_size`` ranks take one more, as ``torch.tensor_split``)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def gather_rows(self, tensor: torch.Tensor, dim: int, total: int) -> torch.Tensor:
        """Every rank's rows of ``tensor`` (cells on ``dim``; rank ``r`` holds
        :meth:`rows` of a minibatch of ``total``), concatenated in rank order. Gradients
        flow back through ``torch.distributed.nn``'s all-gather: each rank's rows get the
        sum over ranks of their gradients."""
        from torch.distributed.nn.functional import all_gather

        sizes = [stop - start for start, stop in (Group(r, self.world_size, self.device).rows(total) for r in range(self.world_size))]
        moved = tensor.movedim(dim, 0)
        if moved.dtype == torch.bool:  # gloo gathers no bools
            return self.gather_rows(moved.to(torch.uint8), 0, total).bool().movedim(0, dim)
        pad = max(sizes) - moved.shape[0]  # all-gather takes equal shapes: the last ranks may hold a row fewer
        if pad:
            moved = torch.cat([moved, moved.new_zeros((pad, *moved.shape[1:]))])
        if moved.requires_grad:
            parts = all_gather(moved)
        else:
            parts = [torch.empty_like(moved) for _ in range(self.world_size)]
            dist.all_gather(parts, moved.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes)]).movedim(0, dim)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place."""
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def min_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Minimum of ``tensor`` over the ranks, in place."""
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return tensor

    def from_main_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank, in place."""
        dist.broadcast(tensor, src=0)
        return tensor


# --- which launch -------------------------------------------------------------------------
def launched_by_torchrun() -> bool:
    """Whether this process is one of a group started by torchrun (its variables are set)."""
    return all(k in os.environ for k in _TORCHRUN_ENV)


def plan(strategy: str, devices: int | None, device: torch.device) -> str:
    """How to train: ``"single"`` (this process alone), ``"spawn"`` (start ``devices``
    processes here) or ``"torchrun"`` (this process is one rank of a launched group).

    Raises a ValueError or :class:`~spatial_mg._errors.DeviceUnavailableError` that says
    what to change when the combination cannot work.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise ValueError(f"devices must be a whole number >= 1 (or None), not {devices!r}")
    # under torchrun "auto" is DDP where there is more than one process; "ddp" even with one
    torchrun = launched_by_torchrun() and (strategy == "ddp" or int(os.environ["WORLD_SIZE"]) > 1)
    if strategy == "single":
        if devices not in (None, 1):
            raise ValueError(f"strategy='single' trains in one process on one device, not devices={devices}; use strategy='ddp'")
        return "single"
    if strategy == "auto" and not torchrun and devices in (None, 1):
        return "single"
    if torchrun:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        if devices is not None and devices != local:
            raise ValueError(
                f"this process was started by torchrun with {local} processes on this node, but devices={devices}: "
                "leave devices out (torchrun's --nproc-per-node sets it) or make them equal"
            )
        if device.type == "cuda" and device.index is not None:
            raise ValueError(f"under torchrun each rank takes the GPU of its LOCAL_RANK: give accelerator='gpu', not {str(device)!r}")
        return "torchrun"
    if devices is None:
        raise ValueError(
            "strategy='ddp' needs devices=N (the processes to start here), or a launch by torchrun "
            "(torchrun --nproc-per-node N -m spatial_mg.cli train ...)"
        )
    if device.type == "cuda":
        if device.index is not None:
            raise ValueError(f"strategy='ddp' puts rank i on GPU i: give accelerator='gpu', not {str(device)!r}")
        available = torch.cuda.device_count()
        if devices > available:
            raise DeviceUnavailableError(
                f"strategy='ddp' with devices={devices} on accelerator 'gpu' needs {devices} GPUs (NCCL takes one per "
                f"rank), but torch sees {available}: give devices={available} or fewer, or train on the CPU "
                "(accelerator='cpu', gloo)"
            )
    elif device.type != "cpu":
        raise ValueError(f"strategy='ddp' runs on 'cpu' (gloo) or 'gpu' (NCCL), not on {str(device)!r}")
    return "spawn"


def check_shardable(n_train: int, n_val: int, batch_size: int, eval_batch_size: int, world_size: int) -> None:
    """Raise unless every training and validation minibatch has a cell for every rank."""
    if world_size <= 1:
        return
    for what, n, size, flag in (
        ("training", n_train, batch_size, "batch_size"),
        ("validation", n_val, eval_batch_size, "eval_batch_size"),
    ):
        if n == 0 and what == "validation":
            continue
        smallest = n // max(1, math.ceil(n / size))  # torch.tensor_split's smallest part
        if smallest < world_size:
            raise ValueError(
                f"strategy='ddp' on {world_size} ranks needs at least {world_size} cells in every {what} minibatch, "
                f"but the smallest has {smallest} ({n} {what} cells, {flag}={size}): use fewer devices, a larger "
                f"{flag}, or more cells"
            )


# --- joining a group ------------------------------------------------------------------------
def _backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _rank_device(device: torch.device, local_rank: int) -> torch.device:
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


def group_from_environment(device: torch.device) -> Group:
    """Join the process group that torchrun started (``env://``: ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``), once per process; this rank's :class:`Group`."""
    global _OWN_GROUP
    local_rank = int(os.environ["LOCAL_RANK"])
    device = _rank_device(device, local_rank)
    if not dist.is_initialized():
        dist.init_process_group(_backend(device), init_method="env://", timeout=_TIMEOUT)
        _OWN_GROUP = True
    return Group(dist.get_rank(), dist.get_world_size(), device)


def is_main_process() -> bool:
    """False in a process of a torchrun launch whose ``RANK`` is not 0 (which writes no outputs)."""
    return not launched_by_torchrun() or int(os.environ["RANK"]) == 0


def end_group() -> None:
    """Leave the default process group, if this process joined it (:func:`group_from_environment`)."""
    global _OWN_GROUP
    if _OWN_GROUP and dist.is_initialized():
        dist.destroy_process_group()
    _OWN_GROUP = False


# --- spawning local ranks -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_training(payload: dict, devices: int, device: torch.device) -> list[dict]:
    """Train in ``devices`` new local processes, one rank each; every rank's result.

    Parameters
    ----------
    payload
        What :func:`_train_rank` needs: ``module_config`` (dict), ``state_dict``,
        ``frozen``, ``seed``, ``host``, ``registry``, ``train_idx``, ``val_idx`` (int64
        arrays), ``config`` (resolved :class:`TrainingConfig`), ``fingerprint``,
        ``history``. Written to a private temporary file, not sent through pipes.
    devices
        Number of processes (ranks).
    device
        ``cpu`` (gloo) or ``cuda`` (NCCL, rank ``i`` on GPU ``i``).

    Returns
    -------
    Per rank, a dict with ``state_dict`` (CPU tensors), ``history`` and ``error`` (the
    exception that stopped training, or None: every rank meets the same one).
    """
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="spatial_mg_ddp_") as tmp:
        tmp = Path(tmp)
        torch.save(payload, tmp / "payload.pt")
        threads = max(1, torch.get_num_threads() // devices)  # the ranks share this machine's cores
        args = (devices, _free_port(), str(tmp), str(device.type), threads)
        mp.spawn(_train_rank, args=args, nprocs=devices, join=True)
        return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(devices)]


def _train_rank(local_rank: int, world_size: int, port: int, folder: str, device_type: str, threads: int) -> None:
    """One spawned rank: join the group, train, write ``rank<r>.pt`` (see :func:`spawn_training`)."""
    from ._config import ModuleConfig
    from ._data import DeviceData
    from ._training import Trainer

    torch.set_num_threads(threads)
    folder = Path(folder)
    device = _rank_device(torch.device(device_type), local_rank)
    dist.init_process_group(
        _backend(device), init_method=f"tcp://127.0.0.1:{port}", rank=local_rank, world_size=world_size, timeout=_TIMEOUT
    )
    try:
        p = torch.load(folder / "payload.pt", weights_only=False)  # written by the parent, just now
        config = p["config"]
        module = ModuleConfig.from_dict(p["module_config"]).build(p["seed"])
        module.load_state_dict(p["state_dict"])
        if p["frozen"]:
            module.freeze_reference()
        module.to(device)
        data = DeviceData(p["host"], p["registry"], device)
        train_idx = torch.as_tensor(p["train_idx"], device=device)
        val_idx = torch.as_tensor(p["val_idx"], device=device)
        group = Group(local_rank, world_size, device)
        error, trainer = None, None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)  # the same random state on every rank (see _draws)
            try:
                trainer = Trainer(module, data, train_idx, val_idx, config, p["fingerprint"], p["history"], group=group)
                trainer.fit()
            except Exception as err:  # every rank meets it (sums are reduced first): hand it to the parent
                error = err
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        history = p["history"] if trainer is None else trainer.history
        result = {"state_dict": state, "history": history, "error": error}
        torch.save(result, folder / f"rank{local_rank}.pt")
    finally:
        dist.destroy_process_group()
