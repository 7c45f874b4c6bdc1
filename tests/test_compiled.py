"""``compile=True``: the compiled minibatch losses equal the eager ones at the real shapes, a compiled
run follows the eager run and repeats itself exactly, and a compiler failure is one ConfigError line."""

import copy

import gymnasium as gym
import pytest
import torch

import hybridpg.compiled as compiled_module
from hybridpg import PPO, PROPS
from hybridpg.algorithms.ppo_loss import ppo_minibatch_loss
from hybridpg.algorithms.props import props_minibatch_loss
from hybridpg.compiled import maybe_compiled
from hybridpg.config import PPOConfig, PROPSConfig
from hybridpg.errors import ConfigError
from hybridpg.networks import Policy, ValueNet

HOPPER = (11, gym.spaces.Box(-1.0, 1.0, (3,)))
CARTPOLE = (4, gym.spaces.Discrete(2))


@pytest.fixture
def compiles():
    """The test compiles its own graphs (none left from other tests) and fails if it compiled none."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "nothing was compiled"


def _grads(params: list[torch.nn.Parameter], loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params))


def _actions(space: gym.Space, rows: int) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (rows,)).float()
    return torch.randn(rows, space.shape[0])


@pytest.mark.parametrize("obs_dim,space", [HOPPER, CARTPOLE], ids=["hopper", "cartpole"])
def test_compiled_ppo_minibatch_loss_equals_eager_with_gradients(obs_dim, space, compiles):
    torch.manual_seed(0)
    policy, value = Policy(obs_dim, space, (64, 64)), ValueNet(obs_dim, (64, 64))
    params = [p for p in [*policy.parameters(), *value.parameters()] if p.requires_grad]
    rows = 64  # SB3's PPO minibatch
    obs, actions = torch.randn(rows, obs_dim), _actions(space, rows)
    with torch.no_grad():  # old log-probs a little off, so that some ratios clip
        old_logp = policy.log_prob(obs, actions)[0] + 0.3 * torch.randn(rows)
    adv, ret, old_v = torch.randn(rows), torch.randn(rows), torch.randn(rows)
    cfg = PPOConfig()
    args = (policy, value, obs, actions, old_logp, adv, ret, old_v, cfg)
    eager, fast = ppo_minibatch_loss(*args), maybe_compiled(ppo_minibatch_loss, True, rows)(*args)
    assert float(eager.clipped) > 0
    for a, b in zip(eager, fast, strict=True):
        torch.testing.assert_close(b.float(), a.float(), rtol=1e-5, atol=1e-6)
    for a, b in zip(_grads(params, eager.loss), _grads(params, fast.loss), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("obs_dim,space", [HOPPER, CARTPOLE], ids=["hopper", "cartpole"])
def test_compiled_props_minibatch_loss_equals_eager_with_gradients_at_full_and_partial_sizes(obs_dim, space,
                                                                                           compiles):
    torch.manual_seed(1)
    reference = Policy(obs_dim, space, (64, 64))
    behavior = copy.deepcopy(reference)
    with torch.no_grad():  # phi a step away from theta, so the ratio and the KL term are not trivial
        for p in behavior.parameters():
            p.add_(0.05 * torch.randn_like(p))
    params = [p for p in behavior.parameters() if p.requires_grad]
    cfg = PROPSConfig()
    fast_loss = maybe_compiled(props_minibatch_loss, True, 240)
    for rows in (240, 112):  # the authors' fixed size (its own graph), then a partial one (the any-size graph)
        obs, actions = torch.randn(rows, obs_dim), _actions(space, rows)
        with torch.no_grad():
            ref_out = reference.net(obs)
            ref_logp, _ = reference.log_prob_from(ref_out, actions)
        args = (behavior, obs, actions, ref_logp, ref_out, reference.log_std.detach(), cfg)
        eager, fast = props_minibatch_loss(*args), fast_loss(*args)
        assert float(eager[1]) > 0
        for a, b in zip(eager, fast, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        for a, b in zip(_grads(params, eager[0]), _grads(params, fast[0]), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("algo,env_id", [(PPO, "Pendulum-v1"), (PROPS, "CartPole-v1")])
def test_a_compiled_run_follows_the_eager_run(algo, env_id, compiles):
    settings = dict(seed=4, n_steps=256, n_minibatches=4, n_epochs=2, eval_freq=0, checkpoint_freq=0, se_freq=0)
    if algo is PROPS:
        settings.update(behavior_steps=64, props_epochs=2, props_minibatches=2)
    agents = [algo(env_id, compile=flag, **settings) for flag in (False, True, True)]
    for agent in agents:
        agent.learn(512, progress=False)
    again = [*agents.pop().policy.parameters()]
    for a, b in zip(again, agents[1].policy.parameters(), strict=True):
        assert torch.equal(a, b)  # compiled runs are as deterministic as eager ones
    fresh = algo(env_id, **settings)
    eager, fast, start = ([*a.policy.parameters(), *a.value.parameters()] for a in (*agents, fresh))
    for a, b in zip(eager, fast, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    assert not all(torch.allclose(a, s) for a, s in zip(eager, start, strict=True))  # the updates moved them
    for agent in (*agents, fresh):
        agent.close()


def test_a_compiler_failure_is_one_config_error_line(monkeypatch):
    from torch._dynamo.exc import TorchRuntimeError

    def broken(*args, **kwargs):
        raise TorchRuntimeError("inductor could not find a C++ compiler\nlong details")

    monkeypatch.setattr(compiled_module, "_compiled", lambda any_rows: broken)
    with pytest.raises(ConfigError, match=r"^compile=True: torch.compile failed \(inductor could not find a C\+\+ "
                                          r"compiler\); train without it$"):
        maybe_compiled(ppo_minibatch_loss, True, 64)()
