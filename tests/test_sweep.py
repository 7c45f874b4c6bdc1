"""Local sweeps: parallel runs, restart (skip finished, resume from a checkpoint), failure isolation, compare."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hybridpg.algorithms import ALGORITHMS
from hybridpg.cli import main
from hybridpg.experiments.runs import RunResult, SweepProgress, run_state
from hybridpg.experiments.spec_file import parse_seeds
from hybridpg.experiments.sweep import SweepSpec, run_sweep

TINY = {"n_steps": "128", "behavior_steps": "64", "n_minibatches": "4", "eval_freq": "2",
        "eval_episodes": "2", "checkpoint_freq": "1"}
PPO_TINY = {k: v for k, v in TINY.items() if k != "behavior_steps"}  # PPO has no behavior policy
BUDGET = 512


def _set_args(overrides: dict[str, str]) -> list[str]:
    return [arg for k, v in overrides.items() for arg in ("--set", f"{k}={v}")]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    argv = ["sweep", "--algos", "ppo,props", "--envs", "CartPole-v1", "--seeds", "2",
            "--total-timesteps", str(BUDGET), *_set_args(TINY), "--out", str(root), "--workers", "2"]
    assert main(argv) == 0
    return root


def test_sweep_writes_one_finished_run_folder_per_run(sweep_root: Path) -> None:
    for algo in ("ppo", "props"):
        for seed in (0, 1):
            run_dir = sweep_root / "CartPole-v1" / algo / f"seed{seed}"
            summary = _summary(run_dir)
            assert summary["status"] == "finished"
            assert (summary["algo"], summary["seed"], summary["global_step"]) == (algo, seed, BUDGET)
            assert (run_dir / "checkpoints" / "latest.pt").exists()
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            assert config["config"]["n_steps"] == 128
    # seeds really differ: the two PPO runs did not produce identical learning curves
    curves = [(sweep_root / "CartPole-v1" / "ppo" / f"seed{s}" / "metrics.jsonl").read_text() for s in (0, 1)]
    assert curves[0] != curves[1]
    doc = yaml.safe_load((sweep_root / "sweep.yaml").read_text())
    assert doc["algos"] == ["ppo", "props"] and doc["seeds"] == [0, 1]
    assert doc["total_timesteps"] == BUDGET and doc["overrides"] == TINY
    assert doc["commands"][0].startswith("hybridpg sweep --algos ppo,props --envs CartPole-v1 --seeds 0,1")


def test_rerun_skips_finished_runs(sweep_root: Path) -> None:
    mtimes = {p: p.stat().st_mtime_ns for p in sweep_root.rglob("summary.json")}
    spec = SweepSpec(["ppo", "props"], ["CartPole-v1"], [0, 1], BUDGET, dict(TINY), sweep_root, workers=2)
    progress = run_sweep(spec, stream=io.StringIO())
    assert (progress.skipped, progress.done, progress.failed) == (4, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in sweep_root.rglob("summary.json")} == mtimes


def test_sweep_refuses_to_mix_budgets_in_one_root(sweep_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "1", "--total-timesteps", "2048",
            *_set_args(PPO_TINY), "--out", str(sweep_root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "total_timesteps=512" in err[0]


def test_unfinished_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "CartPole-v1" / "ppo" / "seed3"
    agent = ALGORITHMS["ppo"]("CartPole-v1", seed=3, **PPO_TINY)
    agent.learn(256, run_dir=run_dir)
    agent.close()
    # simulate a crash after the checkpoint at step 256: no summary.json
    (run_dir / "summary.json").unlink()
    assert run_state(run_dir) == "resume"
    spec = SweepSpec(["ppo"], ["CartPole-v1"], [3], BUDGET, dict(PPO_TINY), tmp_path, workers=1)
    progress = run_sweep(spec, stream=io.StringIO())
    assert (progress.done, progress.failed) == (1, 0)
    assert progress.results[0].resumed
    summary = _summary(run_dir)
    assert summary["global_step"] == BUDGET and summary["status"] == "finished"
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert min(steps) <= 256 < max(steps) == BUDGET  # both segments logged into the same folder


def test_failing_run_is_reported_and_the_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # buffer_batches=1 is valid for PPO but PROPS rejects it (b >= 2): only the PROPS run fails
    argv = ["sweep", "--algos", "ppo,props", "--envs", "CartPole-v1", "--seeds", "1",
            "--total-timesteps", "256", *_set_args({**TINY, "buffer_batches": "1"}),
            "--out", str(tmp_path), "--workers", "2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "FAILED CartPole-v1/props/seed0: config field 'buffer_batches'=1: PROPS needs b >= 2" in err
    assert _summary(tmp_path / "CartPole-v1" / "ppo" / "seed0")["status"] == "finished"
    traceback_text = (tmp_path / "CartPole-v1" / "props" / "seed0" / "error.txt").read_text()
    assert traceback_text.startswith("Traceback") and "ConfigError" in traceback_text


def test_bad_sweep_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "never"
    for bad in (["--algos", "ppo,nope"], ["--algos", "ppo", "--set", "not_a_field=1"],
                ["--algos", "ppo", "--seeds", "x"]):
        argv = ["sweep", "--envs", "CartPole-v1", "--total-timesteps", "100", "--out", str(root), *bad]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
    assert not root.exists()


def test_parse_seeds_forms() -> None:
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("4,1") == [4, 1]
    assert parse_seeds("5-7") == [5, 6, 7]


def test_progress_is_one_updating_line_on_a_tty_and_plain_lines_otherwise() -> None:
    tty, plain = io.StringIO(), io.StringIO()
    for stream, is_tty in ((tty, True), (plain, False)):
        progress = SweepProgress(3, stream=stream, tty=is_tty)
        progress.started("a")
        progress.finished(RunResult("a", "finished", eval_return=1.0))
        progress.started("b")
        progress.finished(RunResult("b", "failed", error="boom"))
        progress.finished(RunResult("c", "skipped"), was_running=False)
        progress.close()
        assert (progress.done, progress.failed, progress.skipped, progress.running) == (1, 1, 1, 0)
    assert "\r" in tty.getvalue() and "FAILED b: boom" in tty.getvalue()
    assert "\r" not in plain.getvalue()
    assert plain.getvalue().splitlines()[-1].startswith("[sweep] 2/3 done (1 skipped) | 0 running | 1 failed")


def test_compare_on_a_sweep_root_writes_table_plots_and_report(
    sweep_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["compare", str(sweep_root), "--out", str(out), "--reps", "200"]) == 0
    table = capsys.readouterr().out
    assert "== CartPole-v1 ==" in table
    assert any(line.startswith("ppo ") and line.split()[1] == "2" for line in table.splitlines())
    assert any(line.startswith("props ") for line in table.splitlines())
    assert (out / "learning_curves_CartPole-v1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "performance_profile.png").exists()
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 2
    assert "hybridpg sweep --algos ppo,props" in html and f"hybridpg compare {sweep_root}" in html


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child that this sandbox's init has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_sigterm_stops_the_workers_too_and_their_runs_resume(tmp_path: Path) -> None:
    """SIGTERM to a local sweep reaches its workers: each running run checkpoints, no worker outlives
    the sweep, and the sweep exits 143 with one error line."""
    argv = [sys.executable, "-m", "hybridpg.cli", "sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds",
            "2", "--total-timesteps", "100000000", *_set_args(PPO_TINY), "--out", str(tmp_path), "--workers", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = [tmp_path / "CartPole-v1" / "ppo" / f"seed{s}" for s in (0, 1)]
    try:
        deadline = time.monotonic() + 180
        while not all((r / "checkpoints" / "latest.pt").exists() for r in runs):
            assert proc.poll() is None and time.monotonic() < deadline, "the runs never checkpointed"
            time.sleep(0.5)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    # stderr carries the progress lines, then one line for the stop and no traceback
    assert err.strip().splitlines()[-1].startswith("interrupted: stopped by SIGTERM") and "Traceback" not in err, err
    time.sleep(0.5)
    assert not [pid for pid in workers if _running(pid)], "a worker outlived the sweep"
    for run in runs:
        assert run_state(run) == "resume"
        assert "interrupted by SIGTERM" in (run / "error.txt").read_text()


KILLER = '''
import os, signal
import gymnasium as gym


class Killer(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        os.kill(os.getpid(), signal.SIGKILL)  # what the OS does to a worker that runs out of memory


gym.register("Killer-v0", entry_point=Killer)
'''


def test_a_worker_killed_by_the_os_fails_its_run_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "killer_envs.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the parent's sys.path
    spec = SweepSpec(["ppo"], ["CartPole-v1", "killer_envs:Killer-v0"], [0, 1], 256, dict(PPO_TINY),
                     tmp_path / "sweep", workers=2)
    progress = run_sweep(spec, tty=False)
    err = capsys.readouterr().err
    assert progress.failed == 2 and progress.done == 2  # both Killer runs, neither CartPole run
    assert err.count("FAILED") == 2 and "worker process was killed" in err
    for seed in (0, 1):
        assert (tmp_path / "sweep" / "CartPole-v1" / "ppo" / f"seed{seed}" / "summary.json").is_file()
        killed = tmp_path / "sweep" / "killer_envs:Killer-v0" / "ppo" / f"seed{seed}" / "error.txt"
        assert "killed" in killed.read_text()


def test_sweep_takes_env_kwargs_spelled_as_train_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "1", "--total-timesteps", "256",
            *_set_args({**PPO_TINY, "eval_freq": "0"}), "--env-kwargs", "max_episode_steps=50",
            "--out", str(tmp_path / "s"), "--workers", "1"]
    assert main(argv) == 0
    config = yaml.safe_load((tmp_path / "s" / "CartPole-v1" / "ppo" / "seed0" / "config.yaml").read_text())
    assert config["config"]["env_kwargs"] == {"max_episode_steps": 50}
    both = [*argv[:-4], "--set", "env_kwargs=max_episode_steps=60", "--out", str(tmp_path / "t"), "--workers", "1"]
    assert main(both) == 2
    assert "once" in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_a_run_stopped_before_its_summary_is_finished_by_the_next_sweep(tmp_path: Path) -> None:
    spec = SweepSpec(["ppo"], ["CartPole-v1"], [0], 256, {**PPO_TINY, "eval_freq": "0"}, tmp_path / "s", workers=1)
    assert run_sweep(spec, tty=False).done == 1
    run = tmp_path / "s" / "CartPole-v1" / "ppo" / "seed0"
    (run / "summary.json").unlink()  # the crash window between the last checkpoint and summary.json
    (run / "checkpoints" / "final.pt").unlink()
    progress = run_sweep(spec, tty=False)
    assert progress.done == 1 and progress.failed == 0
    assert _summary(run)["status"] == "finished" and (run / "checkpoints" / "final.pt").exists()
