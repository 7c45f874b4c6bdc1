"""hybridpg train --resume RUN --total-timesteps N: extending a run, and the flags --resume refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridpg.algorithms.base import Agent
from hybridpg.cli import main
from hybridpg.training.checkpoint import load_checkpoint

ARGS = ["--algo", "ppo", "--env", "CartPole-v1", "--seed", "1", "--n-steps", "128", "--n-epochs", "1",
        "--n-minibatches", "2", "--hidden-sizes", "16", "--eval-freq", "0", "--eval-episodes", "1",
        "--progress", "off"]


@pytest.fixture
def finished_run(tmp_path: Path, one_thread: None) -> Path:
    run = tmp_path / "run"
    assert main(["train", *ARGS, "--total-timesteps", "512", "--run-dir", str(run)]) == 0
    return run


def _total(run: Path) -> int:
    return int(yaml.safe_load((run / "config.yaml").read_text())["total_timesteps"])


def _summary(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "summary.json").read_text()))


def _snapshot(run: Path) -> dict[str, bytes]:
    # .lock holds the pid of whoever took the lock last: not part of the run
    files = [p for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"]
    return {str(p.relative_to(run)): p.read_bytes() for p in files}


def test_extending_a_finished_run(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = finished_run
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--total-timesteps", "1024", "--progress", "off"]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {run} (extending from step 512 to 1024)" in out
    assert _total(run) == 1024
    summary = _summary(run)
    assert summary["status"] == "finished" and summary["global_step"] == 1024
    for name in ("latest.pt", "final.pt"):
        state = load_checkpoint(run / "checkpoints" / name)
        # the learning-rate schedule anneals over the new total
        assert state["global_step"] == 1024 and state["run"]["horizon"] == 1024
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 1024 and steps == sorted(steps)
    # a plain --resume now sees the new budget as done
    assert main(["train", "--resume", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"{run} already reached 1024 steps; nothing to do"


def test_the_original_command_with_resume_is_accepted(finished_run: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # flags equal to the run's own settings are harmless: the first command line can be reused
    capsys.readouterr()
    assert main(["train", *ARGS, "--total-timesteps", "640", "--learning-rate", "3e-4",
                 "--resume", str(finished_run)]) == 0
    assert _summary(finished_run)["global_step"] == 640 and _total(finished_run) == 640


def test_an_interrupted_extension_continues_to_the_new_total(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = finished_run
    learn = Agent.learn

    def stopping_early(self: Agent, *args: Any, **kwargs: Any) -> Agent:
        # a callback stops the extension part-way, as a user's callback may
        return learn(self, *args, **kwargs, callback=lambda event: event.global_step < 768)

    with monkeypatch.context() as patch:
        patch.setattr(Agent, "learn", stopping_early)
        assert main(["train", "--resume", str(run), "--total-timesteps", "1024", "--progress", "off"]) == 0
    assert _summary(run)["status"] == "stopped" and _summary(run)["global_step"] == 768
    assert _total(run) == 1024
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--progress", "off"]) == 0
    assert "(resuming at step 768 of 1024)" in capsys.readouterr().out
    assert _summary(run)["status"] == "finished" and _summary(run)["global_step"] == 1024


@pytest.mark.parametrize("flags, named", [
    (["--learning-rate", "0.1"], "--learning-rate"),
    (["--algo", "sac"], "--algo"),
    (["--env", "Pendulum-v1", "--seed", "7"], "--env, --seed"),
    (["--run-dir", "elsewhere"], "--run-dir"),
    (["--buffer-size", "100"], "--buffer-size"),  # another algorithm's field
    (["--n-steps=64", "--total-timesteps", "1024"], "--n-steps"),
])
def test_flags_resume_cannot_honour_are_refused(finished_run: Path, flags: list[str], named: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(finished_run)
    capsys.readouterr()
    assert main(["train", "--resume", str(finished_run), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: hybridpg train: --resume continues the run's own settings; {named} cannot be changed"]
    assert _snapshot(finished_run) == before
    assert not (finished_run.parent / "elsewhere").exists()


def test_a_total_below_the_steps_done_is_refused(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(finished_run)
    capsys.readouterr()
    assert main(["train", "--resume", str(finished_run), "--total-timesteps", "256"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: hybridpg train: --total-timesteps 256 is below the 512 steps {finished_run} "
                   "has already trained; give at least 512"]
    assert main(["train", "--resume", str(finished_run), "--total-timesteps", "512"]) == 0
    assert capsys.readouterr().out.strip() == f"{finished_run} already reached 512 steps; nothing to do"
    assert _snapshot(finished_run) == before


def test_an_unfinished_run_can_be_given_a_shorter_total(tmp_path: Path, one_thread: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    from hybridpg import PPO

    agent = PPO("CartPole-v1", seed=0, n_steps=128, n_epochs=1, n_minibatches=2, hidden_sizes=(16,), eval_freq=0,
                eval_episodes=1)
    agent.learn(256, run_dir=run, progress=False, horizon=1024)  # a planned pause at 256 of 1024
    agent.close()
    assert _total(run) == 1024 and not (run / "summary.json").exists()
    assert main(["train", "--resume", str(run), "--total-timesteps", "384", "--progress", "off"]) == 0
    assert "(resuming at step 256 of 384)" in capsys.readouterr().out
    assert _total(run) == 384 and _summary(run)["global_step"] == 384
    assert load_checkpoint(run)["run"]["horizon"] == 384
