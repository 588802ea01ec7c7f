"""An output folder that one run at a time fills, and that appears complete or not at all."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import pandas as pd

from .._atomic import _sibling, atomic_dir, atomic_file, is_sibling, publish, real_path, recover, remove, say
from .._claim import Claim, describe
from .._json import jsonable


class OutputFolder:
    """Where a run writes its results; use it around the whole run.

    Parameters
    ----------
    path
        The output folder. A folder that already holds anything is refused unless
        ``overwrite``; an empty one is fine.
    overwrite
        Replace a folder of earlier results. It then holds only this run's results, and
        the earlier ones are deleted only once the new ones are complete.
    inputs
        The run's input paths: ``overwrite`` is refused for a folder that holds one of
        them (replacing the folder would delete it).

    Examples
    --------
    >>> with OutputFolder(out, overwrite=overwrite, inputs=[pred, truth]) as folder:  # doctest: +SKIP
    ...     table = compute(...)
    ...     folder.write_csv("metabolites.csv", table)
    >>> # here `out` holds exactly the files written in the block

    Notes
    -----
    Entering claims the folder for the run (``.<name>.lock`` beside it): a second run into
    it meanwhile fails at once with :class:`~spatial_mg._claim.PathInUseError` naming this
    one's pid. Results are written, each atomically, into the hidden sibling
    ``.<name>.staged-<id>``; when the block ends without error that folder takes the
    output folder's place in one step. When it ends with an error, the output folder is
    left as it was and the finished files stay in the staging folder, which a line on
    stderr names; a run that was killed is named, with its staging folder, by the next
    run into the folder.
    """

    def __init__(self, path: str | PathLike, *, overwrite: bool = False, inputs: Iterable = ()):
        self.path = Path(path)
        self.overwrite = overwrite
        self._target = real_path(path)
        self._inputs = [Path(p) for p in inputs if isinstance(p, (str, PathLike))]
        self._staging: Path | None = None
        self._claim: Claim | None = None
        self._check()  # before the run's work: a refused folder should cost nothing

    def __enter__(self) -> OutputFolder:
        staging = _sibling(self._target, "staged")
        self._claim = Claim(self._target, staging=staging).acquire()
        try:
            self._tell_about_stale_claim(self._claim.previous)
            recover(self._target)
            self._check()  # again: another run may have finished into it since
            staging.mkdir()
        except BaseException:
            self._claim.release()
            raise
        self._staging = staging
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._publish()
            else:
                self._keep_finished_files()
        finally:
            self._staging = None
            self._claim.release()

    def file(self, name: str) -> Path:
        """Where to write the result ``name`` during the run (it is at ``path / name`` afterwards)."""
        if self._staging is None:
            raise RuntimeError("Write results inside `with OutputFolder(...) as folder:`.")
        return self._staging / name

    def write_json(self, name: str, payload: dict) -> Path:
        return self.write_text(name, json.dumps(jsonable(payload), indent=2) + "\n")

    def write_text(self, name: str, text: str) -> Path:
        with atomic_file(self.file(name)) as tmp:
            tmp.write_text(text)
        return self.file(name)

    def write_csv(self, name: str, table: pd.DataFrame) -> Path:
        with atomic_file(self.file(name)) as tmp:
            table.to_csv(tmp)
        return self.file(name)

    def save_figure(self, name: str, fig) -> Path:
        import matplotlib.pyplot as plt

        fig = getattr(fig, "figure", fig)  # an Axes draws into its figure
        with atomic_file(self.file(name)) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return self.file(name)

    def write_h5ad(self, name: str, adata) -> Path:
        with atomic_file(self.file(name)) as tmp:  # the temporary keeps the .h5ad suffix
            adata.write_h5ad(tmp)
        return self.file(name)

    def write_h5mu(self, name: str, mdata) -> Path:
        with atomic_file(self.file(name)) as tmp:
            mdata.write(tmp)
        return self.file(name)

    def write_spatialdata(self, name: str, sdata) -> Path:
        """``sdata`` as a zarr store at ``name`` itself (``spatialdata.read_zarr`` reads it back)."""
        with atomic_dir(self.file(name), overwrite=True, create=False) as tmp:
            sdata.write(tmp)
        return self.file(name)

    # --- checks and the end of the run --------------------------------------------------------
    def _check(self) -> None:
        target = self._target
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(f"Output path '{self.path}' is a file; give a folder.")
        above = next((p for p in target.parents if p.exists()), target)
        if not above.is_dir():
            raise NotADirectoryError(f"Output path '{self.path}' lies under '{above}', which is a file; give a folder.")
        if os.path.ismount(target):  # results are staged beside the folder: on another file system here
            raise ValueError(f"Output folder '{self.path}' is a mount point; give a folder inside it.")
        if not (target.is_dir() and any(target.iterdir())):
            return
        if not self.overwrite:
            raise FileExistsError(
                f"Output folder '{self.path}' already holds results. Choose another folder, or pass "
                "--overwrite (overwrite=True) to replace them."
            )
        for path in self._inputs:
            if real_path(path).is_relative_to(target):
                raise ValueError(
                    f"--overwrite would replace the output folder '{self.path}' as a whole, and it holds this "
                    f"run's input '{path}'. Write the results to another folder."
                )
        if Path.cwd().resolve().is_relative_to(target):
            raise ValueError(
                f"--overwrite replaces the output folder '{self.path}' as a whole, and it is the current working "
                "folder, or holds it. Empty it yourself, or choose another folder."
            )

    def _publish(self) -> None:
        try:
            publish(self._staging, self._target, overwrite=self.overwrite)
        except BaseException:
            self._keep_finished_files()
            raise

    def _keep_finished_files(self) -> None:
        staging = self._staging
        if staging is None or not staging.is_dir():
            return
        finished = sorted(p.name for p in staging.iterdir())
        if not finished:
            staging.rmdir()
            return
        say(
            f"the run stopped; '{self.path}' was left as it was, and the {len(finished)} result(s) it finished "
            f"({', '.join(finished)}) are in '{staging}'. Move them where you want them, or delete that folder."
        )

    def _tell_about_stale_claim(self, previous: dict | None) -> None:
        if previous is None:
            return
        staging = Path(previous.get("staging", ""))
        kept = is_sibling(staging, self._target, "staged") and staging.is_dir()
        if kept and not any(staging.iterdir()):
            remove(staging)
            kept = False
        where = f"; the results it finished are in '{staging}'" if kept else ""
        who = describe(previous) if previous else "a run whose lock file is unreadable"
        say(
            f"'{self.path}' was claimed by {who}, which is no longer running: it stopped before "
            f"finishing{where}. This run replaces its claim."
        )
