"""The behavior-policy updates do what the spec says, on small controlled buffers."""

import copy

import gymnasium as gym
import numpy as np
import torch

from hybridpg import PROPS
from hybridpg.algorithms.props import props_update, ros_update
from hybridpg.config import PROPSConfig
from hybridpg.networks import Policy


def skewed_discrete_buffer(n=2048, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=g)
    # theta is ~uniform over 3 actions, but the buffer holds action 0 far too often
    actions = torch.multinomial(torch.tensor([0.8, 0.1, 0.1]), n, replacement=True, generator=g).float()
    return obs, actions


def action_prob_ratio(phi: Policy, theta: Policy, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (torch.softmax(phi.net(obs), -1) / torch.softmax(theta.net(obs), -1)).mean(0)


def test_props_lowers_probability_of_oversampled_actions():
    torch.manual_seed(0)
    theta = Policy(4, gym.spaces.Discrete(3), (16, 16))
    phi = copy.deepcopy(theta)
    obs, actions = skewed_discrete_buffer()
    cfg = PROPSConfig(props_target_kl=0.05, props_lambda=0.1, props_lr=1e-3)
    opt = torch.optim.Adam(phi.parameters(), lr=cfg.props_lr)
    stats = props_update(phi, theta.requires_grad_(False), opt, obs, actions, cfg, torch.Generator().manual_seed(1))
    ratio = action_prob_ratio(phi, theta, obs)
    assert stats["props/grad_steps"] > 0
    assert ratio[0] < 0.95, ratio  # over-sampled action loses probability relative to theta
    assert ratio[1] > 1.05 and ratio[2] > 1.05, ratio  # under-sampled ones gain it


def test_props_stops_once_kl_exceeds_delta():
    torch.manual_seed(0)
    theta = Policy(4, gym.spaces.Discrete(3), (16, 16)).requires_grad_(False)
    obs, actions = skewed_discrete_buffer()
    results = {}
    for delta in (0.002, 10.0):
        phi = copy.deepcopy(theta).requires_grad_(True)
        cfg = PROPSConfig(props_target_kl=delta, props_epochs=8, props_lambda=0.0, props_clip=0.9, props_lr=3e-3)
        opt = torch.optim.Adam(phi.parameters(), lr=cfg.props_lr)
        results[delta] = props_update(phi, theta, opt, obs, actions, cfg, torch.Generator().manual_seed(1))
        with torch.no_grad():
            logr = phi.log_prob(obs, actions)[0] - theta.log_prob(obs, actions)[0]
            results[delta]["kl_all"] = float(((logr.exp() - 1) - logr).mean())
    tight, loose = results[0.002], results[10.0]
    assert tight["props/early_stop"] == 1.0 and loose["props/early_stop"] == 0.0
    # minibatches of (2*2048 - 256) / 16 = 240 rows: 9 per epoch over these 2048 rows
    assert tight["props/grad_steps"] < loose["props/grad_steps"] == 8 * 9
    # the update stopped right after crossing delta: the KL over D is near delta, far below the unconstrained one
    assert tight["kl_all"] < 5 * 0.002 < loose["kl_all"]


def test_ros_step_lowers_log_prob_of_buffer_actions():
    torch.manual_seed(0)
    phi = Policy(3, gym.spaces.Box(-1, 1, (2,)), (16, 16))
    obs, actions = torch.randn(256, 3), torch.randn(256, 2) * 0.5
    before = phi.log_prob(obs, actions)[0].mean().item()
    opt = torch.optim.SGD(phi.parameters(), lr=1e-2)
    for _ in range(5):
        ros_update(phi, opt, obs, actions)
    assert phi.log_prob(obs, actions)[0].mean().item() < before - 1e-3


def test_ppo_ratio_uses_theta_recomputed_log_prob_not_behavior():
    agent = PROPS("CartPole-v1", seed=0, n_steps=256, behavior_steps=64, eval_freq=0)
    from hybridpg.algorithms.base import Run

    run = Run(agent, 10_000, None, progress=False)
    agent.collect(128, run)
    phi = agent.sampler.actor(agent.buffer_data)
    assert phi is not agent.policy
    with torch.no_grad():  # make phi very different from theta
        for p in phi.parameters():
            p.add_(torch.randn_like(p))
    data = agent._prepare()
    obs, actions = agent.buffer_data()
    theta_logp = agent.policy.log_prob(obs, actions)[0]
    phi_logp = phi.log_prob(obs, actions)[0]
    torch.testing.assert_close(data["logp"], theta_logp)
    assert not torch.allclose(data["logp"], phi_logp, atol=1e-3)
    run.close()
    agent.close()


def test_buffer_is_renormalized_with_current_statistics():
    agent = PROPS("CartPole-v1", seed=0, n_steps=256, behavior_steps=64, eval_freq=0)
    from hybridpg.algorithms.base import Run

    run = Run(agent, 10_000, None, progress=False)
    agent.collect(64, run)
    first = agent._prepare()["obs"].clone()
    agent.obs_norm.rms.mean = agent.obs_norm.rms.mean + 1.0  # statistics move on
    second = agent._prepare()["obs"]
    expected = (agent.buffer.obs[agent.buffer.time_order()].reshape(-1, 4) - agent.obs_norm.rms.mean) / np.sqrt(
        agent.obs_norm.rms.var + 1e-8
    )
    np.testing.assert_allclose(second.numpy(), np.clip(expected, -10, 10), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first, second)
    run.close()
    agent.close()


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.state_dict().values()]).clone()


def _reference_per_behavior_update(monkeypatch, stale: bool) -> list[tuple[int, bool, bool]]:
    """(update count, reference == current theta, reference == theta before the last PPO update) per call."""
    import hybridpg.algorithms.behavior as behavior
    import hybridpg.algorithms.onpolicy as onpolicy

    calls: list[tuple[int, bool, bool]] = []
    before_update: dict[int, torch.Tensor] = {}
    real_update = onpolicy.OnPolicyAgent._ppo_update
    real_props = behavior.props_update

    def spy_ppo(self, data):
        before_update[self.updates + 1] = _flat(self.policy)
        return real_ppo_bound(self, data)

    real_ppo_bound = real_update

    def spy_props(behavior, reference, optimizer, obs, actions, cfg, generator):
        current = _flat(agent.policy)
        old = before_update.get(agent.updates, current)
        ref = _flat(reference)
        calls.append((agent.updates, torch.equal(ref, current), torch.equal(ref, old)))
        return real_props(behavior, reference, optimizer, obs, actions, cfg, generator)

    monkeypatch.setattr(onpolicy.OnPolicyAgent, "_ppo_update", spy_ppo)
    monkeypatch.setattr(behavior, "props_update", spy_props)
    agent = PROPS("CartPole-v1", seed=0, n_steps=64, behavior_steps=16, n_minibatches=4, eval_freq=0,
                  se_freq=0, checkpoint_freq=0, props_stale_reference=stale)
    agent.learn(64 * 4, progress=False)
    agent.close()
    return calls


def test_stale_reference_only_for_the_first_behavior_update_after_a_ppo_update(monkeypatch):
    calls = _reference_per_behavior_update(monkeypatch, stale=True)
    after_updates = [c for c in calls if c[0] >= 1]
    assert len(after_updates) >= 8
    for index, (updates, is_current, is_old) in enumerate(after_updates):
        first = index == 0 or after_updates[index - 1][0] != updates
        if first:  # theta has just moved; the reference is still the one from before the update
            assert is_old and not is_current, (index, updates)
        else:
            assert is_current, (index, updates)


def test_fresh_reference_is_always_the_current_theta(monkeypatch):
    calls = _reference_per_behavior_update(monkeypatch, stale=False)
    assert len(calls) >= 8 and all(is_current for _, is_current, _ in calls)
    assert not all(is_old for updates, _, is_old in calls if updates >= 1)


def test_props_minibatches_have_the_authors_fixed_size():
    torch.manual_seed(0)
    theta = Policy(4, gym.spaces.Discrete(3), (16, 16))
    cfg = PROPSConfig(n_steps=2048, behavior_steps=256, props_minibatches=16, props_epochs=1,
                      props_target_kl=1e9)
    obs, actions = skewed_discrete_buffer(n=2048)
    steps = []
    for n in (2048, 4096 - 256):  # a half-full buffer, then a full one less the m oldest rows
        obs, actions = skewed_discrete_buffer(n=n)
        phi = copy.deepcopy(theta).requires_grad_(True)
        opt = torch.optim.Adam(phi.parameters(), lr=1e-4)
        stats = props_update(phi, theta.requires_grad_(False), opt, obs, actions, cfg, torch.Generator())
        steps.append(stats["props/grad_steps"])
    # (b*n - m) / 16 = 240 rows per minibatch: 2048 rows take 9 steps (the last one partial), 3840 take 16
    assert steps == [9.0, 16.0]
