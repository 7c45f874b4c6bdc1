"""ROS as the ROS paper defines it: before every env step phi = theta - alpha * g_bar, where g_bar is
the mean over the buffer of grad_theta log pi_theta(a|s). The step is taken at theta, lowers the
buffer's log-probs, and never accumulates across env steps (spec: props.md, "ROS")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from hybridpg import ROS
from hybridpg.algorithms.base import Agent
from hybridpg.algorithms.props import ros_update
from hybridpg.experiments.fixed_target import run_fixed_target, summarize, write_outputs
from hybridpg.networks import Policy

BOX2 = gym.spaces.Box(-1.0, 1.0, (2,))
DISCRETE3 = gym.spaces.Discrete(3)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def buffer_for(space: gym.Space, n: int = 200, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 3, generator=g)
    if isinstance(space, gym.spaces.Discrete):
        # skewed towards action 0, so the buffer is off-policy and the step has something to correct
        actions = torch.where(torch.rand(n, generator=g) < 0.6, 0, torch.randint(0, 3, (n,), generator=g))
        return obs, actions.float()
    return obs, torch.randn(n, 2, generator=g) * 0.7 + 0.3


def perturbed_policy(space: gym.Space, seed: int = 0) -> Policy:
    """theta with a non-trivial log-std and outputs (the 0.01-gain init is almost constant)."""
    torch.manual_seed(seed)
    policy = Policy(3, space, (16, 16))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return policy


def reference_step(theta: Policy, obs: torch.Tensor, actions: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
    """theta - lr * grad_theta mean log pi_theta(a|s), by plain autograd on a separate copy of theta."""
    names = [n for n, p in theta.named_parameters() if p.requires_grad]
    params = dict(theta.named_parameters())
    inputs = [params[n].detach().clone().requires_grad_(True) for n in names]
    values = {n: p.detach() for n, p in params.items()} | dict(zip(names, inputs, strict=True))
    out = torch.func.functional_call(theta.net, {k[len("net."):]: v for k, v in values.items() if k.startswith("net.")},
                                     (obs,))
    if theta.discrete:
        logp = torch.log_softmax(out, -1).gather(-1, actions.long().view(-1, 1)).squeeze(-1)
    else:
        log_std = values["log_std"]
        z = (actions - out) / log_std.exp()
        logp = (-0.5 * z.pow(2) - log_std - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum(-1)
    grads = torch.autograd.grad(logp.mean(), inputs)
    expected = {n: p.detach().clone() for n, p in params.items()}
    for n, g in zip(names, grads, strict=True):
        expected[n] = expected[n] - lr * g
    return expected


def assert_params_equal(policy: Policy, expected: dict[str, torch.Tensor]) -> None:
    got = dict(policy.named_parameters())
    assert got.keys() == expected.keys()
    for n, p in got.items():
        # same float32 ops; the tolerance only absorbs a fused multiply-add in torch's kernel
        torch.testing.assert_close(p.detach(), expected[n], rtol=0, atol=1e-6, msg=n)


def max_distance(a: Policy, b: Policy) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def mean_logp(policy: Policy, obs: torch.Tensor, actions: torch.Tensor) -> float:
    with torch.no_grad():
        return policy.log_prob(obs, actions)[0].mean().item()


@pytest.mark.parametrize("space", [BOX2, DISCRETE3], ids=["gaussian", "categorical"])
def test_one_step_from_theta_is_theta_minus_lr_times_mean_score(space: gym.Space) -> None:
    theta = perturbed_policy(space)
    obs, actions = buffer_for(space)
    lr = 0.05
    expected = reference_step(theta, obs, actions, lr)
    # phi starts far from theta: the update must reset it, not step from where it is
    phi = perturbed_policy(space, seed=7)
    opt = torch.optim.SGD(phi.parameters(), lr=lr)
    theta_before = {n: p.detach().clone() for n, p in theta.named_parameters()}
    ros_update(phi, opt, obs, actions, theta=theta)
    assert_params_equal(phi, expected)
    # the step moved phi by lr * |g_bar| (so a no-op or a step that only resets fails above) ...
    assert max_distance(phi, theta) > 1e-3
    # ... and left theta alone
    for n, p in theta.named_parameters():
        assert torch.equal(p, theta_before[n]), n


@pytest.mark.parametrize("space", [BOX2, DISCRETE3], ids=["gaussian", "categorical"])
def test_step_lowers_the_buffer_log_prob_below_theta(space: gym.Space) -> None:
    theta = perturbed_policy(space)
    obs, actions = buffer_for(space)
    phi = perturbed_policy(space, seed=7)
    ros_update(phi, torch.optim.SGD(phi.parameters(), lr=0.05), obs, actions, theta=theta)
    drop = mean_logp(theta, obs, actions) - mean_logp(phi, obs, actions)
    # first order: lr * |g_bar|^2 > 0; the wrong sign raises the log-prob by the same amount
    assert drop > 1e-4


def test_a_repeated_call_does_not_accumulate() -> None:
    theta = perturbed_policy(BOX2)
    obs, actions = buffer_for(BOX2)
    phi = perturbed_policy(BOX2, seed=7)
    opt = torch.optim.SGD(phi.parameters(), lr=0.05)
    for _ in range(5):
        ros_update(phi, opt, obs, actions, theta=theta)
    assert_params_equal(phi, reference_step(theta, obs, actions, 0.05))


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.Adam(ps, lr=1e-3),
        lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=1e-3, weight_decay=1e-4),
    ],
    ids=["adam", "momentum", "weight-decay"],
)
def test_refuses_an_optimizer_whose_step_is_not_minus_lr_times_grad(make_opt) -> None:
    theta = perturbed_policy(BOX2)
    phi = perturbed_policy(BOX2, seed=7)
    obs, actions = buffer_for(BOX2)
    with pytest.raises(ValueError, match="plain gradient steps"):
        ros_update(phi, make_opt(phi.parameters()), obs, actions, theta=theta)


def test_agent_uses_plain_sgd_at_ros_lr() -> None:
    agent = ROS("CartPole-v1", seed=0, n_steps=64, behavior_steps=16, ros_lr=0.25, eval_freq=0)
    try:
        opt = agent.sampler.optimizer
        assert isinstance(opt, torch.optim.SGD)
        assert [(g["lr"], g["momentum"], g["weight_decay"]) for g in opt.param_groups] == [(0.25, 0, 0)]
    finally:
        agent.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_in_the_loop_phi_is_theta_stepped_once_on_the_current_buffer(env_id: str) -> None:
    """Training as usual: before every env step, across PPO updates, phi = theta - lr * g_bar(buffer)."""
    lr = 0.5  # large, so that steps piling up would be far outside the tolerance
    agent = ROS(env_id, seed=0, n_steps=64, behavior_steps=16, buffer_batches=2, ros_lr=lr, n_epochs=2,
                n_minibatches=4, hidden_sizes=(16, 16), eval_freq=0)
    original = agent.sampler.actor
    distances: list[tuple[int, int, float]] = []  # (PPO updates so far, env step, |phi - theta|)

    def checked(data: Any) -> Policy:
        if not agent.buffer.size:
            return original(data)
        with torch.inference_mode(False), torch.enable_grad():
            obs, actions = agent.buffer_data()  # what the step sees: normalized before the env step
            expected = reference_step(agent.policy, obs, actions, lr)
            actor = original(data)
            assert actor is agent.sampler.behavior
            assert_params_equal(actor, expected)
            distances.append((agent.updates, agent.global_step, max_distance(actor, agent.policy)))
        return actor

    agent.sampler.actor = checked  # type: ignore[method-assign]
    try:
        agent.learn(320, progress=False)
    finally:
        agent.close()
    assert agent.updates == 5 and len(distances) == 319  # every env step but the very first
    assert all(d > 0 for _, _, d in distances)
    # phi stays one step from theta: no further after 300 steps and 5 PPO updates than in the first 16
    # (steps that pile up drift away: 12.3 against 5.0 on CartPole, and Pendulum's obs turn non-finite)
    early = [d for _, step, d in distances if step <= 16]
    assert max(d for _, step, d in distances if step > 16) < 2 * max(early)


def test_first_step_on_an_empty_buffer_samples_from_theta() -> None:
    agent = ROS("CartPole-v1", seed=0, n_steps=64, behavior_steps=16, ros_lr=0.5, eval_freq=0)
    try:
        assert agent.buffer.size == 0
        assert agent.sampler.actor(agent.buffer_data) is agent.policy
    finally:
        agent.close()


def test_split_ros_run_resumes_bit_identically(tmp_path: Path) -> None:
    config = {"hidden_sizes": (16, 16), "n_steps": 128, "behavior_steps": 32, "buffer_batches": 2, "ros_lr": 0.1,
              "n_epochs": 2, "n_minibatches": 4, "eval_freq": 0, "checkpoint_freq": 1}
    whole = ROS("CartPole-v1", seed=3, **config)
    whole.learn(512, run_dir=tmp_path / "whole", progress=False)
    ROS("CartPole-v1", seed=3, **config).learn(256, run_dir=tmp_path / "split", progress=False, horizon=512)
    resumed = Agent.load(tmp_path / "split")
    resumed.learn(256, reset=False, progress=False)
    assert resumed.global_step == whole.global_step == 512
    assert isinstance(resumed, ROS) and isinstance(whole, ROS)
    for a, b in ((whole.policy, resumed.policy), (whole.sampler.behavior, resumed.sampler.behavior)):
        for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q), n


def test_fixed_target_keeps_ros_step_sizes_apart(tmp_path: Path) -> None:
    rows = run_fixed_target("CartPole-v1", "ros", "random", 0, batches=1, batch_size=64, se_epochs=1,
                            overrides={"ros_lr": 0.3, "behavior_steps": 64})
    assert [(r["method"], r["ros_lr"], r["samples"]) for r in rows] == [("ros", 0.3, 64)]
    other = [{**rows[0], "ros_lr": 1e-5, "se": 1.0}, {**rows[0], "method": "on-policy", "se": 2.0}]
    del other[1]["ros_lr"]
    table = summarize(write_outputs(tmp_path, rows + other))
    assert list(table) == [("CartPole-v1", m, 64) for m in ("on-policy", "ros lr=1e-05", "ros lr=0.3")]
    assert (tmp_path / "sampling_error.csv").read_text().splitlines()[0].split(",")[:3] == ["env", "method", "ros_lr"]
