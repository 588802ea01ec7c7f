"""Atomic files and folders, and the claims that make writers of one folder take turns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import spatial_mg._atomic as atomic
import spatial_mg._claim as claim_module
from spatial_mg._atomic import atomic_dir, atomic_file, exchange
from spatial_mg._claim import Claim, PathInUseError, lock_path

ROOT = Path(__file__).resolve().parents[1]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _synced_paths(monkeypatch) -> list[str]:
    """Record the path of every fd that os.fsync is called on."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _run_while_watching(workers: list[threading.Thread], look) -> None:
    """Run ``workers`` to their end while another thread calls ``look()`` over and over."""
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            look()

    watcher = threading.Thread(target=watch)
    watcher.start()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    watcher.join()


# --- files ------------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name the synced files")
def test_a_file_is_flushed_to_disk_before_its_rename_and_the_folder_after(tmp_path, monkeypatch):
    synced = _synced_paths(monkeypatch)
    target = tmp_path / "table.csv"
    with atomic_file(target) as tmp:
        tmp.write_text("a,b\n")
        assert synced == []
    assert target.read_text() == "a,b\n"
    assert synced[0] == str(tmp) and synced[-1] == str(tmp_path)  # the data before the rename, the name after


def test_a_failed_write_leaves_neither_temporary_nor_change(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    for make in (lambda tmp: tmp.write_text("half"), lambda tmp: (tmp.mkdir(), (tmp / "x").write_text("half"))):
        with pytest.raises(RuntimeError, match="writer failed"):
            with atomic_file(target) as tmp:
                make(tmp)
                raise RuntimeError("writer failed")
        assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    with atomic_file(target) as tmp:  # and the next write goes through
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_temporaries_are_unique_and_keep_the_suffix(tmp_path):
    seen = set()
    for _ in range(3):
        with atomic_file(tmp_path / "pred.h5ad") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".pred.") and tmp.suffix == ".h5ad"
            seen.add(tmp.name)
            tmp.write_text("x")
    assert len(seen) == 3


def test_concurrent_writers_of_one_file_never_show_half_a_file(tmp_path):
    target = tmp_path / "big.txt"
    contents = {c: c * 200_000 for c in "ab"}
    seen = set()

    def write(char):
        for _ in range(10):
            with atomic_file(target) as tmp, open(tmp, "w") as handle:
                for i in range(0, len(contents[char]), 20_000):  # slowly, in pieces
                    handle.write(contents[char][i : i + 20_000])
                    handle.flush()

    def read():
        if target.exists():
            seen.add(target.read_text())

    _run_while_watching([threading.Thread(target=write, args=(c,)) for c in "ab"], read)
    assert seen and seen <= set(contents.values())  # only ever one writer's whole file
    assert [p.name for p in tmp_path.iterdir()] == ["big.txt"]


# --- folders ----------------------------------------------------------------------------------
def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "from_a").touch(), (b / "from_b").touch()
    if not exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here; the two-rename fallback is tested below")
    assert os.listdir(a) == ["from_b"] and os.listdir(b) == ["from_a"]


def test_a_folder_is_replaced_only_when_complete_and_the_old_one_deleted(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "v1").write_text("1")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_dir(target) as tmp:
            pass
    with pytest.raises(RuntimeError):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "v2").write_text("2")
            raise RuntimeError("crash while writing")
    assert os.listdir(target) == ["v1"]
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "v2").write_text("2")
        assert os.listdir(target) == ["v1"]  # the old one stays until the new one is complete
    assert os.listdir(target) == ["v2"] and _hidden(tmp_path) == []


def _saver(target: Path, tag: str, barrier: threading.Barrier, results: dict, overwrite: bool):
    def run():
        try:
            with atomic_dir(target, overwrite=overwrite) as tmp:
                try:
                    barrier.wait(timeout=1.0)  # both writers inside their writes at once, if both get there
                except threading.BrokenBarrierError:
                    pass
                (tmp / "weights").write_text(tag * 1000)
            results[tag] = "won"
        except FileExistsError as err:  # PathInUseError, or "already exists" had the other finished first
            results[tag] = str(err)

    return threading.Thread(target=run)


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_writers_of_one_folder_exactly_one_wins_and_the_folder_is_never_missing(tmp_path, overwrite):
    target = tmp_path / "model"
    if overwrite:
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("0" * 1000)
    barrier, results, missing = threading.Barrier(2), {}, []

    def watch():
        if overwrite and not (target / "weights").is_file():
            missing.append(time.monotonic())

    _run_while_watching([_saver(target, tag, barrier, results, overwrite) for tag in "ab"], watch)
    winners = [tag for tag, result in results.items() if result == "won"]
    assert len(winners) == 1, results
    (loser,) = set("ab") - set(winners)
    assert f"is being written by the run pid {os.getpid()}" in results[loser] or "already exists" in results[loser]
    assert (target / "weights").read_text() == winners[0] * 1000
    assert not missing and _hidden(tmp_path) == []


def test_without_a_one_step_exchange_a_crash_between_the_renames_is_repaired(tmp_path, monkeypatch, capsys):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "v1").write_text("1")
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def crash_on_second_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the old folder is aside, the new one not yet in place
            raise KeyboardInterrupt("power cut")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "v2").write_text("2")
    monkeypatch.setattr(os, "rename", real_rename)
    # the rollback put the old folder back; simulate the power cut that prevents even that
    assert os.listdir(target) == ["v1"]
    os.rename(target, target.with_name(f".model.old-{'0' * 32}"))
    with atomic_dir(target, overwrite=True) as tmp:
        assert os.listdir(target) == ["v1"]  # recovered when the next writer claimed the path
        (tmp / "v3").write_text("3")
    assert os.listdir(target) == ["v3"] and _hidden(tmp_path) == []
    assert "previous version is back in place" in capsys.readouterr().err


def test_two_renames_replace_a_folder_where_exchange_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    target = tmp_path / "model"
    for version in "12":
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / version).touch()
    assert os.listdir(target) == ["2"] and _hidden(tmp_path) == []


def test_a_symlinked_folder_is_replaced_where_it_points(tmp_path):
    real = tmp_path / "scratch" / "model"
    with atomic_dir(real) as tmp:
        (tmp / "v1").touch()
    (tmp_path / "model").symlink_to(real)
    with atomic_dir(tmp_path / "model", overwrite=True) as tmp:
        (tmp / "v2").touch()
    assert (tmp_path / "model").is_symlink() and os.listdir(real) == ["v2"]


# --- claims -----------------------------------------------------------------------------------
_HOLD = """
import sys, time
from spatial_mg._claim import Claim
Claim(sys.argv[1], staging=sys.argv[2]).acquire()
print("claimed", flush=True)
time.sleep(60)
"""


def _holder(path: Path, staging: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), staging], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_claim_held_by_a_live_process_is_refused_naming_it(tmp_path):
    proc = _holder(tmp_path / "out")
    try:
        with pytest.raises(PathInUseError, match=rf"'{tmp_path / 'out'}' is being written by the run pid {proc.pid} "):
            Claim(tmp_path / "out").acquire()
    finally:
        proc.kill()
        proc.wait()


def test_a_claim_left_by_a_killed_process_is_taken_over(tmp_path):
    proc = _holder(tmp_path / "out", staging="somewhere")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(tmp_path / "out").is_file()  # a kill leaves the lock file
    with Claim(tmp_path / "out") as claim:
        assert claim.previous["pid"] == proc.pid and claim.previous["staging"] == "somewhere"
        assert json.loads(claim.lock.read_text())["pid"] == os.getpid()
    assert not lock_path(tmp_path / "out").exists()  # released


def test_without_flock_a_claim_is_stale_only_when_its_process_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(claim_module, "_try_lock", lambda fd: None)  # a file system without locks
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = lock_path(tmp_path / "out")
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    with Claim(tmp_path / "out") as claim:
        assert claim.previous["pid"] == int(dead.stdout)
    lock.write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename}))
    with pytest.raises(PathInUseError, match=f"pid {os.getppid()}.*If no such run is alive, delete '{lock}'"):
        Claim(tmp_path / "out").acquire()


def test_the_lock_file_appears_filled_in(tmp_path, monkeypatch):
    real_link, seen = os.link, []

    def link(src, dst, **kw):
        seen.append(json.loads(Path(src).read_text()))  # what the name will show the moment it exists
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", link)
    with Claim(tmp_path / "out", staging="s"):
        pass
    assert seen[0]["pid"] == os.getpid() and seen[0]["staging"] == "s"
    assert _hidden(tmp_path) == []


def test_a_folder_without_write_permission_is_named(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(os, "open", refuse)  # what a read-only folder does (root ignores chmod)
    with pytest.raises(PermissionError, match=rf"Cannot write '{tmp_path / 'out'}': no permission to write in '{tmp_path}'"):
        Claim(tmp_path / "out").acquire()
