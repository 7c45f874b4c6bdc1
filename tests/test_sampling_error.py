"""Sampling error KL(pi_D || pi_theta): math on hand cases, PROPS lowers it, it never perturbs training."""

import copy
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from hybridpg import PPO
from hybridpg.algorithms.props import props_update
from hybridpg.cli import main
from hybridpg.config import PROPSConfig
from hybridpg.diagnostics.sampling_error import estimate_sampling_error, se_interval
from hybridpg.networks import Policy

BOX2 = gym.spaces.Box(-1.0, 1.0, (2,))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make_policy(space: gym.Space, seed: int = 0, obs_dim: int = 4) -> Policy:
    torch.manual_seed(seed)
    return Policy(obs_dim, space, (16, 16))


def sample(policy: Policy, obs: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = obs.shape[0]
    noise = torch.rand(n, generator=g) if policy.discrete else torch.randn(n, policy.action_dim, generator=g)
    return policy.sample(obs, noise)


def test_discrete_single_state_matches_closed_form_kl():
    # one state: the MLE policy is the empirical action frequency, so SE = KL(freq || pi_theta) exactly
    theta = make_policy(gym.spaces.Discrete(3))
    obs = torch.ones(1000, 4)
    counts = torch.tensor([600, 300, 100])
    actions = torch.cat([torch.full((int(c),), float(k)) for k, c in enumerate(counts)])
    with torch.no_grad():
        p = torch.softmax(theta.net(obs[:1]), -1)[0]
    q = counts / counts.sum()
    expected = float((q * (q / p).log()).sum())
    se = estimate_sampling_error(theta, obs, actions, epochs=300, seed=0, lr=1e-2)
    assert expected > 0.1
    assert se == pytest.approx(expected, rel=0.02)


def test_gaussian_single_state_matches_closed_form_kl():
    # one state: the fitted pi_D is N(sample mean, sample std) per dimension (output bias + log-std)
    theta = make_policy(BOX2)
    obs = torch.ones(2000, 4)
    g = torch.Generator().manual_seed(3)
    actions = torch.tensor([0.4, -0.2]) + torch.tensor([0.7, 1.3]) * torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        mu_t = theta.net(obs[:1])[0]
    mu, sd = actions.mean(0), actions.std(0, unbiased=False)

    def logn(a: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (-0.5 * ((a - m) / s) ** 2 - s.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    expected = float((logn(actions, mu, sd) - logn(actions, mu_t, torch.ones(2))).mean())
    se = estimate_sampling_error(theta, obs, actions, epochs=300, seed=0, lr=1e-2)
    assert expected > 0.1
    assert se == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("space", [BOX2, gym.spaces.Discrete(3)], ids=["gaussian", "categorical"])
def test_on_policy_buffer_has_small_error_and_skewed_buffer_large(space):
    theta = make_policy(space)
    obs = torch.randn(8192, 4, generator=torch.Generator().manual_seed(1))
    on_policy = sample(theta, obs, seed=2)
    if theta.discrete:  # over-sample action 0: each other action is replaced by 0 half the time
        flip = torch.rand(8192, generator=torch.Generator().manual_seed(4)) < 0.5
        skewed = torch.where(flip, torch.zeros_like(on_policy), on_policy)
    else:  # shift every action by 0.3 std
        skewed = on_policy + 0.3
    se_on = estimate_sampling_error(theta, obs, on_policy, epochs=20, seed=0)
    se_skew = estimate_sampling_error(theta, obs, skewed, epochs=20, seed=0)
    assert abs(se_on) < 0.006
    assert se_skew > 0.05 and se_skew > 10 * abs(se_on)


def test_props_behavior_makes_the_combined_buffer_more_on_policy():
    gains = []
    for seed in range(3):
        theta = make_policy(gym.spaces.Discrete(3), seed=seed).requires_grad_(False)
        obs_old = torch.randn(2048, 4, generator=torch.Generator().manual_seed(10 + seed))
        # the old data over-samples action 0 relative to theta
        old = sample(theta, obs_old, seed=20 + seed)
        flip = torch.rand(2048, generator=torch.Generator().manual_seed(30 + seed)) < 0.4
        old = torch.where(flip, torch.zeros_like(old), old)
        phi = copy.deepcopy(theta).requires_grad_(True)
        cfg = PROPSConfig()
        opt = torch.optim.Adam(phi.parameters(), lr=cfg.props_lr, eps=1e-5)
        props_update(phi, theta, opt, obs_old, old, cfg, torch.Generator().manual_seed(seed))
        obs_new = torch.randn(2048, 4, generator=torch.Generator().manual_seed(40 + seed))
        obs_all = torch.cat([obs_old, obs_new])
        se = {}
        for name, behavior in (("theta", theta), ("phi", phi)):
            new = sample(behavior, obs_new, seed=50 + seed)
            se[name] = estimate_sampling_error(theta, obs_all, torch.cat([old, new]), epochs=30, seed=seed)
        gains.append(se["theta"] - se["phi"])
        assert se["phi"] < se["theta"], (seed, se)
    assert np.mean(gains) > 0.005, gains


def test_estimate_touches_no_rng_stream_and_no_parameter():
    agent = PPO("CartPole-v1", seed=3, n_steps=64, n_minibatches=4)
    try:
        before_global, before_agent = torch.get_rng_state(), agent.torch_rng.get_state()
        before_np = np.random.get_state()[1].copy()
        params = copy.deepcopy(agent.policy.state_dict())
        obs = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
        actions = sample(agent.policy, obs, seed=1)
        with torch.inference_mode():  # as inside the rollout loop
            se = estimate_sampling_error(agent.policy, obs, actions, epochs=3, seed=5)
        assert math.isfinite(se)
        assert torch.equal(torch.get_rng_state(), before_global)
        assert torch.equal(agent.torch_rng.get_state(), before_agent)
        assert np.array_equal(np.random.get_state()[1], before_np)
        for k, v in agent.policy.state_dict().items():
            assert torch.equal(v, params[k]), k
        # same seed, same answer; another seed shuffles differently
        again = estimate_sampling_error(agent.policy, obs, actions, epochs=3, seed=5)
        assert again == se
    finally:
        agent.close()


def test_auto_frequency_gives_about_thirty_points_but_never_every_update():
    assert se_interval(-1, 900) == 30
    assert se_interval(-1, 10) == 10  # short runs: the floor keeps the cost under ~10% of wall time
    assert se_interval(0, 300) == 0 and se_interval(4, 300) == 4


def test_live_hook_logs_and_leaves_training_unchanged(tmp_path):
    finals = {}
    for freq in (0, 1):
        agent = PPO("CartPole-v1", seed=1, n_steps=128, n_minibatches=4, se_freq=freq, se_epochs=5,
                    eval_freq=0)
        agent.learn(384, run_dir=tmp_path / f"f{freq}")
        finals[freq] = copy.deepcopy(agent.policy.state_dict())
        agent.close()
    records = [json.loads(line) for line in (tmp_path / "f1" / "metrics.jsonl").read_text().splitlines()]
    se = [r["diagnostics/sampling_error"] for r in records if "diagnostics/sampling_error" in r]
    assert len(se) == 3 and all(-0.01 < v < 1.0 for v in se)
    assert not any("diagnostics/sampling_error" in line for line in (tmp_path / "f0" / "metrics.jsonl").open())
    for k in finals[0]:  # the diagnostic did not change a single training draw
        assert torch.equal(finals[0][k], finals[1][k]), k


def test_fixed_target_cli_appends_and_plots(tmp_path, capsys):
    out = tmp_path / "se"
    argv = ["sampling-error", "--env", "CartPole-v1", "--method", "on-policy,props", "--target", "random",
            "--batches", "2", "--batch-size", "256", "--behavior-steps", "128", "--seeds", "1",
            "--se-epochs", "2", "--out", str(out)]
    assert main(argv) == 0
    assert main([*argv, "--seed-start", "1"]) == 0
    rows = [json.loads(line) for line in (out / "sampling_error.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert {(r["method"], r["seed"], r["samples"]) for r in rows} == {
        (m, s, n) for m in ("on-policy", "props") for s in (0, 1) for n in (256, 512)
    }
    assert len((out / "sampling_error.csv").read_text().splitlines()) == 9
    assert (out / "sampling_error.png").stat().st_size > 1000
    capsys.readouterr()
    assert main([*argv[:4], "bogus"]) == 2
    assert main(["sampling-error", "--target", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    # m = 128 does not divide a batch of 100: refused before any folder is made
    assert main([*argv[:-2], "--batch-size", "100", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
