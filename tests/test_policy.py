"""The inference policy: load_policy acts exactly like the trained agent, without its envs or its dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from hybridpg import HNPG, PPO, Agent, TrainedPolicy, load_policy
from hybridpg.cli import main
from hybridpg.data.datasets import collect_episodes, write_dataset
from hybridpg.errors import CheckpointError

SMALL = {"n_steps": 128, "n_minibatches": 2, "eval_freq": 0}


def _observations(env_id: str, n: int = 16) -> np.ndarray:
    env = gym.make(env_id)
    obs = [env.reset(seed=s)[0] for s in range(n)]
    env.close()
    return np.stack(obs)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_loaded_policy_acts_like_the_agent(env_id: str, tmp_path: Path) -> None:
    agent = PPO(env_id, seed=1, **SMALL)
    agent.learn(512, run_dir=tmp_path / "run", progress=False)
    policy = load_policy(tmp_path / "run")
    obs = _observations(env_id)
    np.testing.assert_array_equal(policy.predict(obs)[0], agent.predict(obs)[0])
    np.testing.assert_array_equal(policy.predict(obs[0])[0], agent.predict(obs[0])[0])  # one observation
    if env_id == "Pendulum-v1":  # actions are clipped to the bounds stored in the checkpoint
        loose = policy.predict(obs * 50.0, deterministic=False)[0]
        assert np.all(np.abs(loose) <= 2.0)
    agent.close()


def test_loading_a_policy_builds_no_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    agent.learn(256, run_dir=tmp_path / "run", progress=False)
    expected = agent.predict(_observations("CartPole-v1"))[0]
    agent.close()

    def no_env(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_policy built an env")

    monkeypatch.setattr("hybridpg.envs.vector.VecEnv.__init__", no_env)
    monkeypatch.setattr(gym, "make", no_env)
    policy = Agent.load_policy(tmp_path / "run")
    monkeypatch.undo()
    np.testing.assert_array_equal(policy.predict(_observations("CartPole-v1"))[0], expected)


def test_a_policy_file_round_trips_and_is_not_an_agent_checkpoint(tmp_path: Path) -> None:
    agent = PPO("Pendulum-v1", seed=2, **SMALL)
    agent.learn(256, run_dir=tmp_path / "run", progress=False)
    policy = load_policy(tmp_path / "run")
    policy.save(tmp_path / "policy.pt")
    again = load_policy(tmp_path / "policy.pt")
    assert isinstance(again, TrainedPolicy) and again.algo == "ppo" and again.env_id == "Pendulum-v1"
    obs = _observations("Pendulum-v1")
    np.testing.assert_array_equal(again.predict(obs)[0], agent.predict(obs)[0])
    # the file holds the actor only, not the critic, optimizer or buffer
    assert (tmp_path / "policy.pt").stat().st_size < (tmp_path / "run" / "checkpoints" / "final.pt").stat().st_size
    with pytest.raises(CheckpointError, match="policy file"):
        Agent.load(tmp_path / "policy.pt")
    with pytest.raises(CheckpointError, match="live agent"):
        agent.inference.save(tmp_path / "live.pt")
    agent.close()


def _pendulum_dataset(root: Path) -> str:
    env = gym.make("Pendulum-v1")
    records = collect_episodes(env, lambda obs: env.action_space.sample(), 2, seed=0)
    write_dataset("pend-v0", records, env.spec, env.observation_space, env.action_space, root=root)
    return "pend-v0"


def test_eval_of_dataset_runs_needs_no_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    name = _pendulum_dataset(data)
    bc = PPO("Pendulum-v1", seed=0, offline_dataset=name, offline_root=str(data), bc_steps=20, **SMALL)
    bc.learn(256, run_dir=tmp_path / "bc", progress=False)
    hnpg = HNPG("Pendulum-v1", seed=0, offline_dataset=name, offline_root=str(data), n_steps=200,
                offline_batch=100, eval_freq=0)
    hnpg.learn(200, run_dir=tmp_path / "hnpg", progress=False)
    obs = _observations("Pendulum-v1")
    expected = {"bc": bc.predict(obs)[0], "hnpg": hnpg.predict(obs)[0]}
    bc.close()
    hnpg.close()
    shutil.rmtree(data)  # the dataset is gone: inference must not need it
    for run in ("bc", "hnpg"):
        np.testing.assert_array_equal(load_policy(tmp_path / run).predict(obs)[0], expected[run])
        assert main(["eval", str(tmp_path / run), "--episodes", "1"]) == 0
        assert "return" in capsys.readouterr().out


def test_eval_refuses_a_negative_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path), "--seed", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seed=-1" in err[0]


def test_a_sac_policy_loads_without_its_replay_buffer_or_critics(tmp_path: Path) -> None:
    from hybridpg import SAC

    agent = SAC("Pendulum-v1", seed=0, learning_starts=64, batch_size=32, hidden_sizes=(32, 32), eval_freq=0,
                log_freq=50, save_replay_buffer=True)
    agent.learn(200, run_dir=tmp_path / "run", progress=False)
    obs = _observations("Pendulum-v1")
    policy = load_policy(tmp_path / "run")
    np.testing.assert_allclose(policy.predict(obs)[0], agent.predict(obs)[0], rtol=0, atol=0)
    policy.save(tmp_path / "sac_policy.pt")
    small = (tmp_path / "sac_policy.pt").stat().st_size
    assert small < (tmp_path / "run" / "checkpoints" / "final.pt").stat().st_size / 4
    np.testing.assert_array_equal(load_policy(tmp_path / "sac_policy.pt").predict(obs)[0], agent.predict(obs)[0])
    agent.close()


def test_load_policy_with_an_env_instance_ignores_the_saved_env_kwargs(tmp_path: Path) -> None:
    agent = PPO("Pendulum-v1", seed=0, env_kwargs={"g": 9.0}, **SMALL)
    agent.learn(256, run_dir=tmp_path / "run", progress=False)
    env = gym.make("Pendulum-v1", g=9.0)
    policy = Agent.load_policy(tmp_path / "run", env=env)  # as Agent.load does: the instance is used as it is
    obs = _observations("Pendulum-v1")
    np.testing.assert_array_equal(policy.predict(obs)[0], agent.predict(obs)[0])
    env.reset(seed=0)  # still open: the caller's env is not closed
    env.close()
    agent.close()
