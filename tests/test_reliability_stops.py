"""Runs stopped at awkward moments (real subprocesses, real signals) always end resumable and
finish identically to an uninterrupted run; one trainer per run folder.

A child script hooks one moment (the last loop iteration, the final evaluation, the summary or
config write) and sends the signal to its own process from there, so the timing is exact.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridpg.cli import main
from hybridpg.envs import VecEnv
from hybridpg.training.checkpoint import load_checkpoint

TOTAL = 512  # 4 updates of 128 steps; evals at step 0 and update 3, the final one in finish()
ARGS = ["--algo", "ppo", "--env", "CartPole-v1", "--total-timesteps", str(TOTAL), "--seed", "3",
        "--n-steps", "128", "--n-epochs", "1", "--n-minibatches", "2",
        "--hidden-sizes", "16,16", "--eval-freq", "3", "--eval-episodes", "2", "--se-freq", "0", "--progress", "off"]

CHILD = r'''
import os, signal, sys
from pathlib import Path
import hybridpg.training.run as run_mod
from hybridpg.algorithms.base import Agent
from hybridpg.cli import main

moment, total = sys.argv[1], int(sys.argv[2])
if moment == "last-iteration":  # SIGINT right after the last update, inside the loop
    after_update = run_mod.Run.after_update
    def hooked_after_update(self, metrics):
        after_update(self, metrics)
        if self.agent.global_step >= total:
            os.kill(os.getpid(), signal.SIGINT)
    run_mod.Run.after_update = hooked_after_update
elif moment == "final-eval":  # SIGINT at the first action of the final evaluation
    predict = Agent.predict
    def hooked_predict(self, obs, deterministic=True):
        if self.global_step >= total and not getattr(Agent, "_sent", False):
            Agent._sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return predict(self, obs, deterministic)
    Agent.predict = hooked_predict
else:  # SIGKILL while writing config.yaml or summary.json, its temp file already on disk
    write = run_mod.atomic_write_bytes
    def hooked_write(path, data):
        if Path(path).name == moment:
            (Path(path).parent / f".{moment}.dead.tmp").write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return write(path, data)
    run_mod.atomic_write_bytes = hooked_write
sys.exit(main(sys.argv[3:]))
'''


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "hybridpg.cli", *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def hooked(moment: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "child.py"
    script.write_text(CHILD)
    return subprocess.run([sys.executable, "-W", "ignore", str(script), moment, str(TOTAL), *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def metrics_without_time(run_dir: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time")} for row in rows]


def finished(run_dir: Path) -> bool:
    return json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, float]]:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *ARGS, "--run-dir", str(run_dir)]) == 0
    return metrics_without_time(run_dir)


def test_sigint_in_the_last_iteration_saves_what_it_says_and_resume_finishes(
    tmp_path: Path, reference: list[dict[str, float]]
) -> None:
    run_dir = tmp_path / "run dir"  # a space: the printed resume hint must be shell-quoted
    proc = hooked("last-iteration", ["train", *ARGS, "--checkpoint-freq", "1000", "--run-dir", str(run_dir)], tmp_path)
    assert proc.returncode == 130, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"interrupted by SIGINT at step {TOTAL}; checkpoint saved to "), proc.stderr
    hint = line.split("resume with: ", 1)[1]
    assert shlex.split(hint) == ["hybridpg", "train", "--resume", str(run_dir)]
    # the message says a checkpoint was saved: it was, at the step it names
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] == TOTAL
    assert not (run_dir / "summary.json").exists()
    done = cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert done.returncode == 0 and "nothing to do" not in done.stdout, done.stdout + done.stderr
    assert finished(run_dir) and metrics_without_time(run_dir) == reference


def test_signal_during_the_final_evaluation_leaves_a_resumable_run(
    tmp_path: Path, reference: list[dict[str, float]]
) -> None:
    run_dir = tmp_path / "run"
    proc = hooked("final-eval", ["train", *ARGS, "--checkpoint-freq", "1000", "--run-dir", str(run_dir)], tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"interrupted by SIGINT at step {TOTAL}; checkpoint saved")
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] == TOTAL
    done = cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # the cut-short evaluation logged nothing; the resumed one logs exactly the reference's row
    assert finished(run_dir) and metrics_without_time(run_dir) == reference


def test_kill_after_the_final_checkpoint_before_summary_resume_finishes_and_cleans(
    tmp_path: Path, reference: list[dict[str, float]]
) -> None:
    run_dir = tmp_path / "run"
    proc = hooked("summary.json", ["train", *ARGS, "--checkpoint-freq", "1", "--run-dir", str(run_dir)], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (run_dir / ".summary.json.dead.tmp").exists() and not (run_dir / "summary.json").exists()
    (run_dir / ".config.yaml.dead.tmp").write_bytes(b"algo: pp")  # a config write a crash cut short
    done = cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert done.returncode == 0 and "nothing to do" not in done.stdout, done.stdout + done.stderr
    assert finished(run_dir)
    # the final evaluation logged before the kill counts; it is not logged twice
    assert metrics_without_time(run_dir) == reference
    assert not [p.name for p in run_dir.rglob("*.tmp")]
    again = cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_kill_during_setup_leaves_a_folder_a_fresh_train_accepts(
    tmp_path: Path, reference: list[dict[str, float]]
) -> None:
    run_dir = tmp_path / "run"
    proc = hooked("config.yaml", ["train", *ARGS, "--run-dir", str(run_dir)], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (run_dir / "config.yaml").exists()
    resume = cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resume.returncode == 2 and "train --run-dir" in resume.stderr  # says how to start it again
    fresh = cli("train", *ARGS, "--run-dir", str(run_dir), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert finished(run_dir) and metrics_without_time(run_dir) == reference
    assert not [p.name for p in run_dir.rglob("*.tmp")]


def test_leftovers_of_an_older_setup_order_are_accepted_but_user_files_are_not(tmp_path: Path) -> None:
    dead = tmp_path / "dead"
    (dead / "tb").mkdir(parents=True)
    (dead / "tb" / "events.out.tfevents.1.host").write_bytes(b"\x18\x00")
    (dead / "metrics.jsonl").write_bytes(b"")
    (dead / ".config.yaml.abc.tmp").write_bytes(b"al")
    fresh = cli("train", *ARGS, "--total-timesteps", "128", "--eval-freq", "0", "--run-dir", str(dead), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = cli("train", *ARGS, "--run-dir", str(mine), cwd=tmp_path)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_resume_refuses_a_finished_run_without_latest_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", *ARGS, "--total-timesteps", "128", "--eval-freq", "0", "--run-dir", str(run_dir)]) == 0
    (run_dir / "checkpoints" / "latest.pt").unlink()
    before = (run_dir / "metrics.jsonl").read_bytes()
    proc = cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "latest.pt is missing" in lines[0]
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in run_dir.rglob("*") if p.is_file()}


def test_a_second_trainer_in_the_same_folder_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = [*ARGS, "--total-timesteps", "200000", "--checkpoint-freq", "1", "--eval-freq", "0",
            "--run-dir", str(run_dir)]
    holder = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "hybridpg.cli", "train", *argv],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "latest.pt").exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the first trainer never checkpointed"
            time.sleep(0.05)
        holder.send_signal(signal.SIGSTOP)  # freeze it, so any change in the folder is the intruder's
        time.sleep(0.2)
        before = snapshot(run_dir)
        for intruder in (["--resume", str(run_dir)], argv):
            proc = cli("train", *intruder, cwd=tmp_path)
            assert proc.returncode == 2, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and re.search(rf"\bpid {holder.pid}\b", lines[0]), proc.stderr
            assert snapshot(run_dir) == before
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    from hybridpg.training.folder import RunLock

    RunLock(run_dir).release()  # the lock died with its holder: the folder is free again


def _last_step(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    return max((json.loads(line)["step"] for line in lines if line.endswith("}")), default=-1)


def _ctrl_c(argv: list[str], run_dir: Path, past_step: int, cwd: Path, sig: int = signal.SIGINT) -> tuple[int, str]:
    """A trainer in its own process group, Ctrl-C'd as a terminal does it: SIGINT to the whole
    group (its env workers too) once it has logged a step beyond ``past_step``."""
    proc = subprocess.Popen([sys.executable, "-m", "hybridpg.cli", "train", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0)
    try:
        deadline = time.monotonic() + 120
        while _last_step(run_dir) <= past_step:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.05)
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def test_ctrl_c_on_a_terminal_with_async_envs_checkpoints_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = [*ARGS, "--total-timesteps", "1000000", "--async-envs", "true", "--num-envs", "2", "--eval-freq", "0",
            "--run-dir", str(run_dir)]
    code, err = _ctrl_c(argv, run_dir, 256, tmp_path)
    # the workers ignore the terminal's SIGINT: the trainer checkpoints through them, then closes them
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted by SIGINT at step "), err
    first = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"]
    assert first > 256 and _last_step(run_dir) <= first  # so the wait below waits for the resumed run
    code, err = _ctrl_c(["--resume", str(run_dir)], run_dir, first, tmp_path)  # resumes, then goes on
    assert code == 130 and "Traceback" not in err, err
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] > first


def _space_samples(vec: VecEnv, n: int = 32) -> list[list[list[float]]]:
    """``n`` samples of each env's action and observation space, drawn from the spaces' own RNGs:
    for async envs from copies of the workers' spaces, RNG state included."""
    if vec._async is not None:
        pairs = zip(vec._async.get_attr("action_space"), vec._async.get_attr("observation_space"), strict=True)
    else:
        pairs = ((env.action_space, env.observation_space) for env in vec.envs)
    return [[np.concatenate([np.ravel(a.sample()), o.sample()]).tolist() for _ in range(n)] for a, o in pairs]


def test_async_workers_seed_their_spaces_from_the_run_seed_like_sync_envs() -> None:
    vecs = [VecEnv("Pendulum-v1", 2, async_envs, seed=seed)
            for async_envs, seed in ((True, 11), (True, 11), (False, 11), (True, 12))]
    try:
        first, again, sync, other = (_space_samples(vec) for vec in vecs)
    finally:
        for vec in vecs:
            vec.close()
    assert first == again == sync  # the same seed: the same draws, in workers as in-process
    assert first[0] != first[1]  # seed + env index: each env its own stream
    assert other[0] != first[0] and other[1] != first[1]


def test_sigterm_to_the_process_group_with_async_envs_checkpoints(tmp_path: Path) -> None:
    # what schedulers (scancel, docker stop, systemd) do: SIGTERM to the whole group, workers included
    run_dir = tmp_path / "run"
    argv = [*ARGS, "--total-timesteps", "1000000", "--async-envs", "true", "--num-envs", "2", "--eval-freq", "0",
            "--run-dir", str(run_dir)]
    code, err = _ctrl_c(argv, run_dir, 256, tmp_path, sig=signal.SIGTERM)
    assert code == 143 and "Traceback" not in err and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted by SIGTERM at step "), err
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] > 256


def test_a_loop_without_safe_points_is_refused_at_its_first_update(tmp_path: Path) -> None:
    from hybridpg import PPO
    from hybridpg.errors import HybridPGError

    class NoSafePoints(PPO):
        def _train(self, run: Any, total_timesteps: int) -> None:
            while self.global_step < total_timesteps:  # never asks run.safe_point(): unstoppable
                self.collect(self.config.n_steps, run)
                self.updates += 1
                run.after_update({})

    agent = NoSafePoints("CartPole-v1", n_steps=64, eval_freq=0)
    with pytest.raises(HybridPGError, match="must call run.safe_point"):
        agent.learn(256, run_dir=tmp_path / "run", progress=False)
    agent.close()
