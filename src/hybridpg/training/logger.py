"""Metrics to ``metrics.jsonl`` and TensorBoard event files, with stable metric names.

Names used across algorithms: ``charts/episode_return``, ``charts/episode_length``,
``eval/return_mean``, ``eval/return_std``, ``losses/*``, ``props/*``, ``diagnostics/*``,
``time/sps``. Each JSONL line is ``{"step": env_steps, "time": seconds, name: value, ...}``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from hybridpg.errors import HybridPGError


def write_error(path: Path, exc: OSError) -> HybridPGError:
    """A failed write (full disk, read-only folder) as one error line."""
    return HybridPGError(f"cannot write {path}: {exc.strerror or exc}; the last checkpoint is intact")


def _quiet_tensorboard_thread_errors() -> None:
    """TensorBoard's writer thread dies with a traceback on a full disk and re-raises the error in
    the next add_scalar/flush, where it becomes one error line; drop the thread's traceback."""
    previous = threading.excepthook
    if getattr(previous, "_hybridpg", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError):
            return
        previous(args)

    hook._hybridpg = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class MetricLogger:
    def __init__(self, run_dir: Path | None, tensorboard: bool = True, purge_step: int | None = None) -> None:
        self.run_dir = run_dir
        self.start = time.perf_counter()
        self._file = None
        self._tb: Any = None
        self.history: list[dict[str, float]] = []
        if run_dir is not None:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                self._file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise write_error(run_dir / "metrics.jsonl", exc) from None
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                _quiet_tensorboard_thread_errors()
                try:
                    # on resume, TensorBoard drops events at or after the checkpoint's step (logged before a crash)
                    self._tb = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=purge_step or None)
                except OSError as exc:
                    self._file.close()
                    raise write_error(run_dir / "tb", exc) from None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        # NaN and inf are kept (JSON's NaN/Infinity, TensorBoard's nan): a diverged run must look diverged
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        record: dict[str, float] = {"step": step, "time": round(time.perf_counter() - self.start, 3), **clean}
        self.history.append(record)
        if self._file is not None:
            try:
                self._file.write(json.dumps(record) + "\n")
            except OSError as exc:  # full disk or a folder that became read-only
                raise self._write_error(exc) from None
        if self._tb is not None:
            try:
                for name, value in clean.items():
                    self._tb.add_scalar(name, value, step)
            except OSError as exc:  # raised again here from TensorBoard's writer thread
                raise self._tb_error(exc) from None

    def _write_error(self, exc: OSError) -> HybridPGError:
        assert self.run_dir is not None
        return write_error(self.run_dir / "metrics.jsonl", exc)

    def _tb_error(self, exc: OSError) -> HybridPGError:
        assert self.run_dir is not None
        self._tb = None  # its writer thread is dead; closing it would raise the same error again
        return write_error(self.run_dir / "tb", exc)

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                raise self._write_error(exc) from None
        if self._tb is not None:
            try:
                self._tb.flush()
            except OSError as exc:
                raise self._tb_error(exc) from None

    def close(self) -> None:
        try:
            self.flush()
        finally:  # release the files even when the last flush failed
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
            if self._tb is not None:
                with contextlib.suppress(OSError):
                    self._tb.close()
                self._tb = None


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Read a metrics.jsonl, skipping a torn last line left by a crash."""
    out: list[dict[str, float]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
