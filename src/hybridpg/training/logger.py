"""Metrics to ``metrics.jsonl`` and TensorBoard event files, with stable metric names.

Names used across algorithms: ``charts/episode_return``, ``charts/episode_length``,
``eval/return_mean``, ``eval/return_std``, ``losses/*``, ``props/*``, ``diagnostics/*``,
``time/sps``. Each JSONL line is ``{"step": env_steps, "time": seconds, name: value, ...}``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

from hybridpg.errors import HybridPGError


class MetricLogger:
    def __init__(self, run_dir: Path | None, tensorboard: bool = True, purge_step: int | None = None) -> None:
        self.run_dir = run_dir
        self.start = time.perf_counter()
        self._file = None
        self._tb: Any = None
        self.history: list[dict[str, float]] = []
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                # on resume, TensorBoard drops events at or after the checkpoint's step (logged before a crash)
                self._tb = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=purge_step or None)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        record: dict[str, float] = {"step": step, "time": round(time.perf_counter() - self.start, 3), **clean}
        self.history.append(record)
        if self._file is not None:
            try:
                self._file.write(json.dumps(record) + "\n")
            except OSError as exc:  # full disk or a folder that became read-only
                raise self._write_error(exc) from None
        if self._tb is not None:
            for name, value in clean.items():
                self._tb.add_scalar(name, value, step)

    def _write_error(self, exc: OSError) -> HybridPGError:
        assert self.run_dir is not None
        return HybridPGError(
            f"cannot write metrics to {self.run_dir / 'metrics.jsonl'}: {exc.strerror or exc}; "
            "the last checkpoint is intact"
        )

    def flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                raise self._write_error(exc) from None
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:  # release the files even when the last flush failed
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
            if self._tb is not None:
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
