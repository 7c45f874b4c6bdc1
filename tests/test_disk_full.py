"""A full disk, simulated with a per-process file-size limit: one error line, nothing half-written.

RLIMIT_FSIZE makes every write past the limit fail with EFBIG, the same OSError path a full disk
(ENOSPC) takes; unlike a tiny tmpfs it needs no mount privileges.
"""

import resource
import signal
import subprocess
import sys
from pathlib import Path

from hybridpg.algorithms.base import Agent

TRAIN = [
    "-m",
    "hybridpg.cli",
    "train",
    "--algo",
    "ppo",
    "--env",
    "CartPole-v1",
    "--n-steps",
    "512",
    "--checkpoint-freq",
    "1",
    "--eval-freq",
    "0",
    "--se-freq",
    "0",
    "--progress",
    "off",
]


def limited(max_bytes: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def test_full_disk_mid_run_keeps_last_checkpoint_and_reports_one_line(tmp_path: Path):
    run = tmp_path / "run"
    ok = subprocess.run(
        [sys.executable, *TRAIN, "--total-timesteps", "2048", "--run-dir", str(run)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    config = (run / "config.yaml").read_text().replace("total_timesteps: 2048", "total_timesteps: 8192")
    (run / "config.yaml").write_text(config)  # raise the run's target so --resume has steps to take
    resume = [sys.executable, "-m", "hybridpg.cli", "train", "--resume", str(run)]
    proc = subprocess.run(resume, capture_output=True, text=True, preexec_fn=limited(50_000))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hybridpg train: cannot write"), proc.stderr
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before  # untouched, still loadable
    Agent.load(run / "checkpoints" / "latest.pt").close()
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")], "a temp file was left behind"
