"""CLI smoke tests: train writes a complete run folder, eval reads it back, help lists every field."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybridpg.cli import main
from hybridpg.config import PROPSConfig
from hybridpg.training.logger import read_metrics


def test_train_writes_complete_run_folder_and_eval_reads_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run = tmp_path / "run"
    code = main(["train", "--algo", "props", "--env", "Pendulum-v1", "--total-timesteps", "2048", "--seed", "3",
                 "--run-dir", str(run), "--n-steps", "512", "--behavior-steps", "128", "--eval-freq", "2",
                 "--eval-episodes", "2", "--checkpoint-freq", "1", "--progress", "off"])
    assert code == 0
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/latest.pt", "checkpoints/final.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*")), "no TensorBoard event file"
    names = set().union(*(r.keys() for r in read_metrics(run / "metrics.jsonl")))
    for expected in ("charts/episode_return", "eval/return_mean", "losses/policy_loss", "losses/value_loss",
                     "losses/approx_kl", "props/behavior_kl", "props/clipfrac", "props/epochs_run", "time/sps"):
        assert expected in names, expected
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["global_step"] == 2048 and summary["seed"] == 3
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "props on Pendulum-v1: return" in out


def test_help_lists_every_config_field_with_default():
    out = subprocess.run([sys.executable, "-m", "hybridpg.cli", "train", "--algo", "props", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for f in dataclasses.fields(PROPSConfig):
        assert f"--{f.name.replace('_', '-')}" in out, f.name
    assert "(default: 0.3)" in out  # props_clip / props_lambda defaults are shown


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--algo", "props", "--n-steps", "1000", "--behavior-steps", "300"], "behavior_steps"),
        (["--algo", "props", "--buffer-batches", "0"], "buffer_batches"),
        (["--algo", "ppo", "--learning-rate", "0"], "learning_rate"),
        (["--algo", "ppo", "--env", "NoSuchEnv-v0"], "unknown environment id"),
        (["--algo", "nope"], "unknown algorithm"),
        (["--algo", "ppo", "--n-steps", "many"], "n_steps"),
        (["--algo", "ppo", "--env", "Pendulum-v1", "--env-kwargs", "nope=1"], "unexpected keyword argument 'nope'"),
        (["--algo", "ppo", "--env", "Pendulum-v1", "--env-kwargs", "g"], "'g' is not key=value"),
    ],
)
def test_bad_config_is_one_error_line_and_no_run_folder(tmp_path: Path, argv: list[str], fragment: str):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "hybridpg.cli", "train", *argv, "--run-dir", str(run),
                           "--total-timesteps", "1000"], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr
    assert not run.exists()


def test_env_kwargs_reach_training_evaluation_and_a_loaded_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from hybridpg.algorithms.base import Agent
    from hybridpg.training.evaluate import evaluate

    run = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--env", "Pendulum-v1", "--env-kwargs", "g=2.5,max_episode_steps=40",
                 "--total-timesteps", "256", "--n-steps", "128", "--eval-freq", "1",
                 "--eval-episodes", "1", "--run-dir", str(run), "--progress", "off"]) == 0
    # Pendulum's episodes last 200 steps unless max_episode_steps reached gym.make
    lengths = {r["charts/episode_length"] for r in read_metrics(run / "metrics.jsonl") if "charts/episode_length" in r}
    assert lengths == {40.0}
    agent = Agent.load(run / "checkpoints" / "latest.pt")
    try:
        assert agent.config.env_kwargs == {"g": 2.5, "max_episode_steps": 40}
        assert agent.vec.envs[0].unwrapped.g == 2.5  # type: ignore[attr-defined]
        assert evaluate(agent, n_episodes=1).lengths == [40]
    finally:
        agent.close()
    # an env instance given to load is used as it is: the saved kwargs are not applied to it
    import gymnasium as gym

    other = Agent.load(run / "checkpoints" / "latest.pt", env=gym.make("Pendulum-v1"))
    assert other.config.env_kwargs == {}
    other.close()
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "mean length 40.0" in capsys.readouterr().out


def test_env_kwargs_text_reads_numbers_and_booleans() -> None:
    from hybridpg.config import PPOConfig

    text = "frame_skip=4, ctrl_cost_weight=0.5,terminate_when_unhealthy=false,mode=x,reset_noise_scale=1e-3"
    cfg = PPOConfig.from_dict({"env_kwargs": text})
    assert cfg.env_kwargs == {"frame_skip": 4, "ctrl_cost_weight": 0.5, "terminate_when_unhealthy": False, "mode": "x",
                              "reset_noise_scale": 1e-3}
    assert PPOConfig.from_dict({"env_kwargs": {"g": 2}}).env_kwargs == {"g": 2}  # YAML mapping as it is


def test_box_only_algorithm_on_discrete_space_is_rejected(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "hybridpg.cli", "train", "--algo", "sac", "--env", "CartPole-v1",
                           "--run-dir", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Box action space" in proc.stderr, proc.stderr
