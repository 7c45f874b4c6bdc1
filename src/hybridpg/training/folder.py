"""Run-folder housekeeping: one writer per folder (an OS file lock), dead setups and stale temp files."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

from hybridpg.errors import HybridPGError

LOCK_NAME = ".lock"
# files a run folder's setup writes before config.yaml; a folder holding only these is a dead setup
SETUP_LEFTOVERS = frozenset({LOCK_NAME, ".write-test", "metrics.jsonl", "tb", "checkpoints"})


class RunLockedError(HybridPGError):
    """Another process is training in this run folder."""


class RunLock:
    """One writer per run folder: an flock on RUN/.lock, released by the OS when the holder dies.

    Re-entrant within a process (the CLI takes it before ``learn``, whose ``Run`` takes it again).
    The holder's pid is written into the file so a refused trainer can name it.
    """

    _held: dict[str, tuple[int, int]] = {}  # realpath -> (fd, depth)

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.key = os.path.realpath(self.run_dir)
        self.released = False
        if self.key in RunLock._held:
            fd, depth = RunLock._held[self.key]
            RunLock._held[self.key] = (fd, depth + 1)
            return
        path = self.run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise HybridPGError(f"cannot write to run folder {self.run_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise HybridPGError(f"cannot lock run folder {self.run_dir}: {exc.strerror or exc}") from None
            raise RunLockedError(
                f"run folder {self.run_dir} is in use by another trainer (pid {holder_pid(self.run_dir) or '?'}); "
                "wait for it to end or stop it first"
            ) from None
        # the holder's pid, for the message a refused trainer prints; best effort on a full disk
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        RunLock._held[self.key] = (fd, 1)

    def release(self) -> None:
        if self.released or self.key not in RunLock._held:
            return
        self.released = True
        fd, depth = RunLock._held[self.key]
        if depth > 1:
            RunLock._held[self.key] = (fd, depth - 1)
            return
        del RunLock._held[self.key]
        os.close(fd)  # closing the only descriptor drops the flock


def holder_pid(run_dir: Path) -> int | None:
    """The pid written by the trainer holding (or last holding) RUN/.lock."""
    try:
        return int((Path(run_dir) / LOCK_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def check_not_locked(run_dir: Path) -> None:
    """Raise RunLockedError when another process holds RUN/.lock (without creating the file)."""
    path = Path(run_dir) / LOCK_NAME
    if os.path.realpath(run_dir) in RunLock._held:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file, or unreadable: the real lock taken later decides
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise RunLockedError(
            f"run folder {run_dir} is in use by another trainer (pid {holder_pid(run_dir) or '?'}); "
            "wait for it to end or stop it first"
        ) from None
    finally:
        os.close(fd)


def is_dead_setup(run_dir: Path) -> bool:
    """True for a folder left by a run whose setup was interrupted before config.yaml existed:
    nothing in it but setup leftovers (empty metrics, TensorBoard header, lock, temp files)."""
    for entry in run_dir.iterdir():
        name = entry.name
        if name.startswith(".") and name.endswith(".tmp"):
            continue
        if name not in SETUP_LEFTOVERS:
            return False
        if name == "metrics.jsonl" and (not entry.is_file() or entry.stat().st_size):
            return False
        if name == "checkpoints" and (not entry.is_dir() or any(not p.name.endswith(".tmp") for p in entry.iterdir())):
            return False
    return True


def clear_dead_setup(run_dir: Path) -> None:
    """Remove a dead setup's leftovers (see ``is_dead_setup``) so a fresh run starts clean."""
    remove_stale_temp_files(run_dir)
    for name in ("metrics.jsonl", ".write-test"):
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / "tb").is_dir():
        shutil.rmtree(run_dir / "tb")
    if (run_dir / "checkpoints").is_dir():
        (run_dir / "checkpoints").rmdir()


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temp files of atomic writes that a crash interrupted (config, summary, checkpoints)."""
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
