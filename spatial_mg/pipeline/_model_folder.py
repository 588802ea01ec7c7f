"""The folder of trained models that ``run_train`` writes and ``run_predict`` reads.

One model, or an ensemble of models trained with seeds ``seed, seed + 1, ...``::

    OUT/model/             the first model (seed): a complete PoEVAE folder, loadable alone
    OUT/model_seed<k>/     each further model of an ensemble (seed k), as complete
    OUT/ensemble.json      an ensemble's members (seed, folder, epochs), in training order

``OUT`` given to :func:`load_models` is the ensemble when it has ``ensemble.json``, else
its ``model``; a model folder itself (``OUT/model``, ``OUT/model_seed1``) is that model alone.
"""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

from .._validation import existing_dir
from ._outputs import OutputFolder

MODEL_DIR = "model"
ENSEMBLE_FILE = "ensemble.json"


def member_dir(seed: int, first_seed: int) -> str:
    """The folder name of the model trained with ``seed`` in an ensemble that began at ``first_seed``."""
    return MODEL_DIR if seed == first_seed else f"{MODEL_DIR}_seed{seed}"


def save_models(folder: OutputFolder, models: list) -> list[str]:
    """Save ``models`` (the first one's seed first) into ``folder``; return their folder names."""
    first = models[0].seed
    names = [member_dir(m.seed, first) for m in models]
    for model, name in zip(models, names):
        model.save(folder.file(name), overwrite=True)
    if len(models) > 1:
        members = [{"seed": m.seed, "folder": n, "epochs": len(m.history)} for m, n in zip(models, names)]
        folder.write_json(ENSEMBLE_FILE, {"n_models": len(models), "members": members})
    return names


def load_models(path: str | PathLike, accelerator: str = "auto") -> list:
    """The models of a folder written by ``run_train`` (all of an ensemble), or of one model folder."""
    from ..model import PoEVAE

    root = existing_dir(path, "model folder")
    record = root / ENSEMBLE_FILE
    if record.is_file():
        folders = [root / name for name in _member_names(record)]
    else:
        folders = [root / MODEL_DIR if (root / MODEL_DIR).is_dir() else root]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"'{record}' lists the model folder '{folder.name}', which is missing: copy the whole folder that "
                f"'spatial-mg train' wrote, or give '{root / MODEL_DIR}' to use its first model alone."
            )
    return [PoEVAE.load(folder, accelerator=accelerator) for folder in folders]


def _member_names(record: Path) -> list[str]:
    try:
        members = json.loads(record.read_text())["members"]
        names = [str(m["folder"]) for m in members]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"'{record}' is not an ensemble record written by 'spatial-mg train' ({type(err).__name__}: {err}); "
            "train again, or give one model folder inside it."
        ) from None
    if not names or any(Path(n).name != n or n in ("", ".", "..") for n in names):
        raise ValueError(f"'{record}' names no model folders, or names outside its folder; train again.")
    return names
