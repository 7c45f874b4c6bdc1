"""Training progress: a one-line bar on a terminal, periodic log lines elsewhere (nohup, CI, a pipe).

Speed and ETA come from the recent window (the last ``WINDOW_SECONDS``), not the average since the
start: evaluations, a slow first batch or a resumed run's setup would otherwise skew them for long.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from typing import TextIO

# off a terminal, at most one line per this many seconds (tests set it to 0)
PROGRESS_SECONDS_VAR = "HYBRIDPG_PROGRESS_SECONDS"
DEFAULT_LINE_SECONDS = 30.0
WINDOW_SECONDS = 60.0


def line_interval() -> float:
    try:
        return max(float(os.environ.get(PROGRESS_SECONDS_VAR, DEFAULT_LINE_SECONDS)), 0.0)
    except ValueError:
        return DEFAULT_LINE_SECONDS


def format_duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "--:--"
    if seconds >= 3600:
        return time.strftime("%H:%M:%S", time.gmtime(seconds))
    return time.strftime("%M:%S", time.gmtime(seconds))


class ProgressBar:
    """``enabled``: True draws the bar, False prints nothing, None picks by the stream: the bar on
    a terminal, else one plain line at most every $HYBRIDPG_PROGRESS_SECONDS (default 30) seconds."""

    def __init__(self, total: int, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        tty = self.stream.isatty()
        self.mode = "bar" if enabled or (enabled is None and tty) else ("lines" if enabled is None else "off")
        self.enabled = self.mode != "off"
        self.interval = 0.25 if self.mode == "bar" else line_interval()
        self.total = total
        self.start = time.perf_counter()
        self.last_draw = self.start
        self._samples: deque[tuple[float, int]] = deque()
        self._start_step = 0

    @property
    def start_step(self) -> int:
        return self._start_step

    @start_step.setter
    def start_step(self, step: int) -> None:
        # a resumed run starts counting here; its speed ignores the steps done before
        self._start_step = step
        self._samples.clear()
        self._samples.append((self.start, step))

    def recent_sps(self, now: float, step: int) -> float:
        """Steps per second over the recent window (the whole run while it is shorter)."""
        samples = self._samples
        if not samples:
            samples.append((self.start, self._start_step))
        samples.append((now, step))
        # keep one sample at or before the window's start, so the window is always covered
        while len(samples) > 2 and samples[1][0] <= now - WINDOW_SECONDS:
            samples.popleft()
        t0, s0 = samples[0]
        return (step - s0) / (now - t0) if now > t0 else 0.0

    def update(
        self, step: int, latest_return: float | None, force: bool = False, eval_return: float | None = None
    ) -> None:
        if self.mode == "off":
            return
        now = time.perf_counter()
        if not force and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        sps = self.recent_sps(now, step)
        remaining = max(self.total - step, 0) / sps if sps > 0 else float("inf")
        eta = format_duration(remaining)
        if self.mode == "lines":
            pct = 100 * step / max(self.total, 1)
            ret = "n/a" if latest_return is None else f"{latest_return:.1f}"
            ev = "n/a" if eval_return is None else f"{eval_return:.1f}"
            self.stream.write(
                f"[hybridpg] step {step}/{self.total} ({pct:.0f}%) | {sps:.0f} sps | return {ret} | "
                f"eval {ev} | eta {eta}\n"
            )
            self.stream.flush()
            return
        frac = min(step / max(self.total, 1), 1.0)
        bar = "#" * int(frac * 24)
        ret = "   n/a" if latest_return is None else f"{latest_return:8.1f}"
        self.stream.write(f"\r[{bar:<24}] {step}/{self.total} | {sps:7.0f} sps | return {ret} | eta {eta} ")
        self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()
