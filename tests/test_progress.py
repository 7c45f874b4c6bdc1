"""Feedback on long runs: the run folder first, periodic lines off a terminal, ETA from recent speed."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hybridpg.training import progress as progress_mod
from hybridpg.training.progress import ProgressBar

LINE = re.compile(
    r"^\[hybridpg\] step (\d+)/(\d+) \(\d+%\) \| (\d+) sps \| return (\S+) \| eval (\S+) \| eta (\d\d:\d\d)$"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", fake)
    return fake


def test_off_a_terminal_lines_come_at_most_every_n_seconds(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRIDPG_PROGRESS_SECONDS", "30")
    stream = io.StringIO()  # not a tty, like nohup, CI or a pipe
    bar = ProgressBar(10_000, enabled=None, stream=stream)
    for i in range(1, 100):  # one update per second for 99 s
        clock.now += 1.0
        bar.update(i * 10, latest_return=float(i), eval_return=5.0 if i > 50 else None)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines  # at 30, 60 and 90 s
    first = LINE.match(lines[0])
    assert first is not None, lines[0]
    assert first.group(1) == "300" and first.group(3) == "10" and first.group(4) == "30.0" and first.group(5) == "n/a"
    last = LINE.match(lines[-1])
    assert last is not None and last.group(5) == "5.0", lines[-1]
    assert "\r" not in stream.getvalue()


def test_eta_follows_the_recent_speed_not_the_average_since_start(clock: Clock) -> None:
    stream = io.StringIO()
    bar = ProgressBar(1_000_000, enabled=None, stream=stream)
    bar.interval = 0.0
    step = 0
    for _ in range(600):  # 10 minutes at 10 steps/s (say, a long evaluation-heavy start)
        clock.now += 1.0
        step += 10
        bar.update(step, None)
    for _ in range(120):  # then 2 minutes at 1000 steps/s
        clock.now += 1.0
        step += 1000
        bar.update(step, None)
    match = LINE.match(stream.getvalue().splitlines()[-1])
    assert match is not None
    assert int(match.group(3)) == 1000  # the window's speed; the average since start is ~170
    minutes, seconds = map(int, match.group(6).split(":"))
    assert abs(minutes * 60 + seconds - (1_000_000 - step) / 1000) <= 1


def test_off_prints_nothing_and_a_terminal_gets_the_bar(clock: Clock) -> None:
    quiet = io.StringIO()
    bar = ProgressBar(100, enabled=False, stream=quiet)
    clock.now += 100
    bar.update(50, 1.0, force=True)
    bar.close()
    assert quiet.getvalue() == ""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = ProgressBar(100, enabled=None, stream=tty)
    clock.now += 1
    bar.update(50, 1.0)
    assert tty.getvalue().startswith("\r[############") and "50/100" in tty.getvalue()


def test_cli_prints_the_run_folder_first_and_progress_lines_into_a_pipe(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "HYBRIDPG_PROGRESS_SECONDS": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "hybridpg.cli", "train", "--total-timesteps", "512", "--n-steps", "128",
         "--n-minibatches", "2", "--n-epochs", "1", "--eval-freq", "2", "--eval-episodes", "1",
         "--run-dir", str(run)],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"run folder: {run}"
    lines = [LINE.match(line) for line in proc.stderr.splitlines() if line.startswith("[hybridpg]")]
    assert len(lines) >= 4 and all(lines), proc.stderr
    assert lines[-1] is not None and lines[-1].group(1) == "512" and lines[-1].group(5) != "n/a"
