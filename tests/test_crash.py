"""Crash safety of `hybridpg train`: SIGKILL at random moments loses at most one checkpoint
interval and never leaves an unreadable checkpoint; SIGINT/SIGTERM checkpoint and exit cleanly.
Because resume is exact, the killed-and-resumed run ends with the same metrics as one clean run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hybridpg.cli import main
from hybridpg.training.checkpoint import load_checkpoint

N_STEPS = 128  # checkpoint_freq=1: one checkpoint per update, i.e. every N_STEPS env steps
# long enough that the progress bar (redrawn every 0.25 s) shows every kill target before the run
# ends: on an idle box this config runs several thousand steps/s, so 3072 steps could finish
# between two redraws and the test would find nothing to kill
TOTAL = 12288
ARGS = ["--algo", "ppo", "--env", "CartPole-v1", "--total-timesteps", str(TOTAL), "--seed", "7",
        "--n-steps", str(N_STEPS), "--n-epochs", "1", "--n-minibatches", "2",
        "--hidden-sizes", "16,16", "--checkpoint-freq", "1", "--eval-freq", "0", "--eval-episodes", "1"]


class Training:
    """A `hybridpg train` subprocess whose progress bar (stderr) tells how far it got."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "hybridpg.cli", "train", *argv, "--progress", "on"],
            cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.step = -1
        self.stderr = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            self.stderr += chunk
            steps = re.findall(rb"\] (\d+)/\d+ \|", self.stderr[-4096:])
            if steps:
                self.step = int(steps[-1])

    def wait_for_step(self, step: int, timeout: float = 240) -> bool:
        """True once the progress bar shows ``step``; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while self.step < step:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def finish(self, timeout: float = 240) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.stderr.decode(errors="replace")


def metrics_without_time(run_dir: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time")} for row in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, float]]:
    """The same run, never interrupted."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *ARGS, "--run-dir", str(run_dir), "--progress", "off"]) == 0
    return metrics_without_time(run_dir)


def test_sigkill_at_random_moments_then_resume(tmp_path: Path, reference: list[dict[str, float]]) -> None:
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(0)
    targets = np.sort(rng.choice(np.arange(200, TOTAL // 2), size=3, replace=False))
    argv = [*ARGS, "--run-dir", str(run_dir)]
    for target in targets:
        job = Training(argv, tmp_path)
        reached = job.wait_for_step(int(target))
        seen = job.step
        job.proc.send_signal(signal.SIGKILL)
        code, err = job.finish()
        assert reached and code == -signal.SIGKILL, err[-500:]
        latest = run_dir / "checkpoints" / "latest.pt"
        assert latest.exists(), "a checkpoint interval passed but no checkpoint was written"
        state = load_checkpoint(latest)  # readable, checksum intact, every time
        # lost work: at most one checkpoint interval behind the progress we saw before the kill
        assert seen - N_STEPS <= state["global_step"] <= TOTAL
        argv = ["--resume", str(run_dir)]
    job = Training(argv, tmp_path)
    code, err = job.finish()
    assert code == 0, err[-1000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["global_step"] == TOTAL
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    # exact resume + metrics trimmed to each checkpoint: identical to the uninterrupted run
    assert metrics_without_time(run_dir) == reference


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_sigterm_checkpoint_and_exit_cleanly(
    sig: signal.Signals, code: int, tmp_path: Path, reference: list[dict[str, float]]
) -> None:
    run_dir = tmp_path / "run"
    job = Training([*ARGS, "--run-dir", str(run_dir)], tmp_path)
    assert job.wait_for_step(TOTAL // 3)
    seen = job.step
    job.proc.send_signal(sig)
    exit_code, err = job.finish()
    assert exit_code == code, err[-1000:]
    last_line = err.strip().splitlines()[-1].split("\r")[-1].strip()
    assert last_line.startswith(f"interrupted by {sig.name} at step ")
    assert last_line.endswith(f"resume with: hybridpg train --resume {run_dir}")
    assert "Traceback" not in err
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert seen <= state["global_step"] < TOTAL  # saved where it stopped, not an interval earlier
    assert not (run_dir / "summary.json").exists()
    job = Training(["--resume", str(run_dir)], tmp_path)
    exit_code, err = job.finish()
    assert exit_code == 0, err[-1000:]
    assert metrics_without_time(run_dir) == reference
