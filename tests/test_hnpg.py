"""HNPG: conjugate gradient, the critic's two loss terms, the NPG step, a short lock run, errors."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from hybridpg import HNPG, Agent
from hybridpg.algorithms.hnpg import QNet, critic_loss, td_targets
from hybridpg.algorithms.npg import conjugate_gradient, npg_step
from hybridpg.config import HNPGConfig
from hybridpg.data.datasets import collect_episodes, write_dataset
from hybridpg.envs.lock import LockOptimalPolicy
from hybridpg.errors import ConfigError
from hybridpg.networks import Policy, policy_kl
from hybridpg.training.logger import read_metrics

LOCK = "hybridpg/CombinationLock-v0"


def test_conjugate_gradient_matches_direct_solve() -> None:
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=50, tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def test_td_target_and_critic_terms_on_hand_case() -> None:
    rewards, terminated = torch.tensor([1.0, 0.5, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    next_v = torch.tensor([2.0, 3.0, -1.0])
    targets = td_targets(rewards, terminated, next_v, gamma=0.9)
    # r + gamma * (1 - terminated) * Q(s', a'): the terminated row keeps only its reward
    torch.testing.assert_close(targets, torch.tensor([2.8, 0.5, -0.9]))
    q_on, mc = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])
    q_off = torch.tensor([3.0, 0.5, 0.1])
    total, mc_term, td_term = critic_loss(q_on, mc, q_off, targets, td_weight=2.0)
    assert mc_term.item() == pytest.approx((1.0 + 4.0) / 2)
    assert td_term.item() == pytest.approx((0.2**2 + 0.0 + 1.0**2) / 3)
    assert total.item() == pytest.approx(mc_term.item() + 2.0 * td_term.item())
    # an empty part (no on-policy sample at some step h) contributes nothing
    assert critic_loss(torch.zeros(0), torch.zeros(0), q_off, targets, 1.0)[0].item() == pytest.approx(td_term.item())


def test_discrete_value_is_policy_weighted_q() -> None:
    space = gym.spaces.Discrete(4)
    policy, critic = Policy(3, space, (8,)), QNet(3, space, (8,))
    obs = torch.randn(5, 3)
    with torch.no_grad():
        q_all = torch.stack([critic(obs, torch.full((5,), k)) for k in range(4)], -1)
        expected = (torch.softmax(policy.net(obs), -1) * q_all).sum(-1)
        torch.testing.assert_close(critic.value(obs, policy, 10, torch.Generator()), expected)


@pytest.mark.parametrize("space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))])
def test_npg_step_improves_surrogate_within_trust_region(space: gym.Space) -> None:
    torch.manual_seed(0)
    policy = Policy(4, space, (16,))
    old = Policy(4, space, (16,))
    old.load_state_dict(policy.state_dict())
    obs = torch.randn(256, 4)
    with torch.no_grad():
        actions = policy.sample(obs, torch.rand(256) if policy.discrete else torch.randn(256, 2))
    adv = (actions == 0).float() if policy.discrete else actions[:, 0].clone()
    adv = (adv - adv.mean()) / adv.std()
    cfg = HNPGConfig(offline_dataset="x-v0")
    out = npg_step(policy, obs, actions, adv, cfg)
    assert out["losses/npg_improvement"] > 0 and out["losses/line_search_frac"] > 0
    with torch.no_grad():
        kl = policy_kl(old, policy, obs).mean().item() * (1 if policy.discrete else 2)
    assert 0 < kl <= 1.5 * cfg.max_kl


def _lock_dataset(root: Path, horizon: int, episodes: int) -> str:
    env = gym.make(LOCK, horizon=horizon)
    policy: Any = LockOptimalPolicy(env, epsilon=1.0 / horizon, seed=0)
    write_dataset("lock-v0", collect_episodes(env, policy, episodes, seed=0), env.spec, env.observation_space,
                  env.action_space, root=root)
    return "lock-v0"


@pytest.mark.slow
def test_short_run_on_lock_learns_and_checkpoints(tmp_path: Path) -> None:
    horizon = 3
    name = _lock_dataset(tmp_path, horizon, 300)
    env = functools.partial(gym.make, LOCK, horizon=horizon)
    agent = HNPG(env, seed=0, offline_dataset=name, offline_root=str(tmp_path), finite_horizon=True,
                 horizon=horizon, gamma=1.0, policy_hidden_sizes=(16, 16), eval_freq=0)
    run = tmp_path / "run"
    agent.learn(15_000, run_dir=run)
    returns = [r["charts/episode_return"] for r in read_metrics(run / "metrics.jsonl") if "charts/episode_return" in r]
    rate = lambda part: float(np.mean(np.asarray(part) > 0.5))  # noqa: E731
    # a uniform policy opens a 3-code lock with probability 1e-3; HNPG should be well past 1/2 here
    assert rate(returns[:300]) < 0.2
    assert rate(returns[-300:]) > 0.5
    restored = Agent.load(run, env=env)
    obs = np.stack([gym.make(LOCK, horizon=horizon).reset(seed=s)[0] for s in range(5)])
    np.testing.assert_array_equal(restored.predict(obs)[0], agent.predict(obs)[0])
    agent.close()
    restored.close()


def test_infinite_horizon_form_runs_on_a_gymnasium_task(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    records = collect_episodes(env, lambda obs: env.action_space.sample(), 3, seed=0)
    write_dataset("pend-v0", records, env.spec, env.observation_space, env.action_space, root=tmp_path)
    agent = HNPG("Pendulum-v1", offline_dataset="pend-v0", offline_root=str(tmp_path), n_steps=200,
                 offline_batch=200, eval_freq=0)
    run = tmp_path / "run"
    agent.learn(400, run_dir=run)
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "losses/critic_td" in r]
    assert len(rows) == 2 and all(np.isfinite(r["losses/critic_mc"]) and r["losses/kl"] > 0 for r in rows)
    agent.close()


def test_hnpg_without_dataset_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="HNPG needs an offline dataset"):
        HNPG("CartPole-v1")
    from hybridpg import cli

    assert cli.main(["train", "--algo", "hnpg", "--env", "CartPole-v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs an offline dataset" in err[0]
    with pytest.raises(ConfigError, match="horizon"):
        HNPGConfig(offline_dataset="x-v0", finite_horizon=True)
