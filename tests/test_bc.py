"""BC warm start: likelihood of dataset actions, a lock solved from demonstrations, critic, resume."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from hybridpg import PPO, PROPS, evaluate
from hybridpg.config import PPOConfig
from hybridpg.data.datasets import collect_episodes, write_dataset
from hybridpg.envs.lock import LockOptimalPolicy
from hybridpg.errors import ConfigError
from hybridpg.training.logger import read_metrics

LOCK, LOCK_C = "hybridpg/CombinationLock-v0", "hybridpg/CombinationLockContinuous-v0"
SMALL: dict[str, Any] = {"n_steps": 64, "n_minibatches": 2, "eval_freq": 0, "checkpoint_freq": 0}


def _dataset(root: Path, env_id: str, horizon: int, epsilon: float, episodes: int = 100) -> str:
    env = gym.make(env_id, horizon=horizon)
    policy: Any = LockOptimalPolicy(env, epsilon, seed=0)
    records = collect_episodes(env, policy, episodes, seed=0)
    name = f"{env_id.split('/')[1].lower()}-h{horizon}-e{int(epsilon * 100)}-v0"
    write_dataset(name, records, env.spec, env.observation_space, env.action_space, root=root)
    return name


def _mean_logp(agent: PPO) -> float:
    assert agent.bc is not None
    obs = torch.from_numpy(agent.obs_norm(agent.bc.obs_raw).astype(np.float32))
    with torch.no_grad():
        return float(agent.policy.log_prob(obs, agent.bc.actions)[0].mean())


@pytest.mark.parametrize("env_id", [LOCK, LOCK_C])
def test_bc_raises_likelihood_of_dataset_actions(tmp_path: Path, env_id: str) -> None:
    name = _dataset(tmp_path, env_id, 3, epsilon=0.3)
    env = functools.partial(gym.make, env_id, horizon=3)
    agent = PPO(env, offline_dataset=name, offline_root=str(tmp_path), bc_steps=1, **SMALL)
    assert agent.bc is not None
    before = _mean_logp(agent)
    agent.bc.actor_steps(300, 1e-3)
    after = _mean_logp(agent)
    assert after > before + 0.5, (before, after)
    agent.close()


def test_bc_warm_start_solves_small_discrete_lock(tmp_path: Path) -> None:
    name = _dataset(tmp_path, LOCK, 3, epsilon=0.0, episodes=50)
    env = functools.partial(gym.make, LOCK, horizon=3)
    cold = PPO(env, seed=1, **SMALL)
    warm = PPO(env, seed=1, offline_dataset=name, offline_root=str(tmp_path), bc_steps=400, **SMALL)
    for agent in (cold, warm):
        agent.learn(64)
    # the untrained policy opens a 3-code lock with probability ~1e-3; the cloned one always
    assert evaluate(cold, env(), 20, seed=5).mean < 0.5
    assert evaluate(warm, env(), 20, seed=5).mean == pytest.approx(1.0)
    # the normalizer absorbed the 150 dataset observations before the first env step
    assert warm.obs_norm.rms.count > 150
    cold.close()
    warm.close()


def test_bc_critic_fits_mc_returns_in_scaled_units(tmp_path: Path) -> None:
    name = _dataset(tmp_path, LOCK, 3, epsilon=0.3)
    env = functools.partial(gym.make, LOCK, horizon=3)
    agent = PPO(env, offline_dataset=name, offline_root=str(tmp_path), bc_steps=1, bc_critic=True, **SMALL)
    assert agent.bc is not None
    targets = agent.bc._critic_targets()
    sigma = np.sqrt(agent.reward_scaler.rms.var + agent.reward_scaler.eps)
    raw = agent.bc.data.mc_returns(agent.config.gamma)
    np.testing.assert_allclose(targets.numpy(), raw / sigma, rtol=1e-5)
    assert agent.reward_scaler.rms.count > agent.bc.data.n_transitions  # scaler saw the dataset
    first = agent.bc.critic_steps(1)
    last = agent.bc.critic_steps(400)
    assert last < 0.3 * first
    agent.close()


def test_concurrent_bc_logged_and_warm_start_not_redone_on_resume(tmp_path: Path) -> None:
    name = _dataset(tmp_path, LOCK, 3, epsilon=0.0, episodes=20)
    env = functools.partial(gym.make, LOCK, horizon=3)
    run = tmp_path / "run"
    agent = PROPS(env, offline_dataset=name, offline_root=str(tmp_path), bc_steps=50, bc_coef=0.5,
                  **{**SMALL, "behavior_steps": 32})
    agent.learn(128, run_dir=run)
    rows = read_metrics(run / "metrics.jsonl")
    assert sum("losses/bc_loss" in r for r in rows) == 2  # one per PPO update
    assert sum("losses/bc_pretrain_loss" in r for r in rows) == 1
    restored = PROPS.load(run / "checkpoints" / "final.pt", env=env)
    assert isinstance(restored, PROPS) and restored.bc is not None and restored.bc.pretrained
    count = restored.obs_norm.rms.count
    restored.learn(64, reset=False)
    assert restored.obs_norm.rms.count == pytest.approx(count + 64)  # no second pass over the dataset
    agent.close()
    restored.close()


def test_bc_config_errors() -> None:
    with pytest.raises(ConfigError, match="need an offline dataset"):
        PPOConfig(bc_steps=10)
    with pytest.raises(ConfigError, match="is unused"):
        PPOConfig(offline_dataset="x-v0")
    with pytest.raises(ConfigError, match="bc_critic"):
        PPOConfig(offline_dataset="x-v0", bc_coef=0.1, bc_critic=True)
    with pytest.raises(ConfigError, match="bc_lr"):
        PPOConfig(offline_dataset="x-v0", bc_steps=1, bc_lr=0.0)


def test_a_relative_offline_root_is_stored_absolute_so_resume_works_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridpg.cli import main

    data = tmp_path / "work" / "data"
    data.mkdir(parents=True)
    name = _dataset(data, LOCK, 3, epsilon=0.0, episodes=10)
    monkeypatch.chdir(tmp_path / "work")
    run = tmp_path / "run"
    argv = ["train", "--algo", "ppo", "--env", LOCK, "--env-kwargs", "horizon=3", "--offline-dataset", name,
            "--offline-root", "data", "--bc-steps", "5", "--n-steps", "64", "--n-minibatches", "2",
            "--eval-freq", "0", "--total-timesteps", "128", "--run-dir", str(run), "--progress", "off"]
    assert main(argv) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())["config"]["offline_root"]
    assert saved == str(data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--resume", str(run), "--total-timesteps", "256", "--progress", "off"]) == 0
    # naming the same root again, relative to where it was given, is the same setting
    monkeypatch.chdir(tmp_path / "work")
    assert main(["train", "--resume", str(run), "--offline-root", "data", "--total-timesteps", "320",
                 "--progress", "off"]) == 0
