"""A one-line progress bar (steps, SPS, latest return, ETA) that is silent when not on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.start_step = 0
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def update(self, step: int, latest_return: float | None, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last_draw < 0.25:
            return
        self.last_draw = now
        elapsed = max(now - self.start, 1e-9)
        sps = (step - self.start_step) / elapsed
        remaining = max(self.total - step, 0) / sps if sps > 0 else float("inf")
        frac = min(step / max(self.total, 1), 1.0)
        bar = "#" * int(frac * 24)
        ret = "   n/a" if latest_return is None else f"{latest_return:8.1f}"
        eta = "--:--" if remaining == float("inf") else time.strftime("%M:%S", time.gmtime(remaining))
        if remaining >= 3600 and remaining != float("inf"):
            eta = time.strftime("%H:%M:%S", time.gmtime(remaining))
        self.stream.write(f"\r[{bar:<24}] {step}/{self.total} | {sps:7.0f} sps | return {ret} | eta {eta} ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
