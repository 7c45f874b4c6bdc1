"""``compile=True``: a compiled minibatch step (loss, gradient, clip, Adam in one graph) equals the
eager step at the real shapes, a compiled run follows the eager run and repeats itself exactly, and a
compiler failure is one ConfigError line."""

import copy

import gymnasium as gym
import pytest
import torch

import hybridpg.compiled as compiled_module
from hybridpg import PPO, PROPS
from hybridpg.algorithms.ppo_loss import ppo_minibatch_loss
from hybridpg.algorithms.props import props_minibatch_loss
from hybridpg.config import PPOConfig, PROPSConfig
from hybridpg.errors import ConfigError
from hybridpg.gradient_step import GradientStep
from hybridpg.networks import Policy, ValueNet, make_adam, tanh

HOPPER = (11, gym.spaces.Box(-1.0, 1.0, (3,)))
CARTPOLE = (4, gym.spaces.Discrete(2))


@pytest.fixture
def compiles():
    """The test compiles its own graphs (none left from other tests) and fails if it compiled none."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "nothing was compiled"


def _actions(space: gym.Space, rows: int) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.randint(0, int(space.n), (rows,)).float()
    return torch.randn(rows, space.shape[0])


def _twin_steps(loss_fn, modules, lr, max_norm, stop_on):
    """An eager and a compiled ``GradientStep`` on copies of the same modules, each with its own LeanAdam."""
    steps = []
    for compile_flag in (False, True):
        copies = copy.deepcopy(modules)
        adam = make_adam([p for m in copies for p in m.parameters()], lr)
        steps.append(GradientStep(loss_fn, copies, adam, max_norm, compile=compile_flag, stop_on=stop_on))
    return steps


def _assert_same_state(eager: GradientStep, fast: GradientStep) -> None:
    for a, b in zip(eager.params, fast.params, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager.params, fast.params, strict=True):
        sa, sb = eager.optimizer.state[a], fast.optimizer.state[b]
        assert float(sa["step"]) == float(sb["step"])
        torch.testing.assert_close(sb["exp_avg"], sa["exp_avg"], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(sb["exp_avg_sq"], sa["exp_avg_sq"], rtol=1e-4, atol=1e-12)


def _ppo_batch(policy: Policy, obs_dim: int, space: gym.Space, rows: int) -> tuple:
    obs, actions = torch.randn(rows, obs_dim), _actions(space, rows)
    with torch.no_grad():  # old log-probs a little off, so that some ratios clip
        old_logp = policy.log_prob(obs, actions)[0] + 0.3 * torch.randn(rows)
    return obs, actions, old_logp, torch.randn(rows), torch.randn(rows), torch.randn(rows), PPOConfig()


@pytest.mark.parametrize("obs_dim,space", [HOPPER, CARTPOLE], ids=["hopper", "cartpole"])
def test_a_compiled_ppo_step_equals_the_eager_step(obs_dim, space, compiles):
    """Forward, gradient, clip and Adam in one graph: the networks, both moments and the step count
    after each of several steps equal plain autograd's with LeanAdam, at SB3's 64-row minibatch."""
    torch.manual_seed(0)
    policy, value = Policy(obs_dim, space, (64, 64)), ValueNet(obs_dim, (64, 64))
    eager, fast = _twin_steps(ppo_minibatch_loss, (policy, value), 3e-4, 0.5, "approx_kl")
    for i in range(3):
        if i == 2:  # an annealed lr reaches the graph as data, not as a constant of it
            for step in (eager, fast):
                step.optimizer.param_groups[0]["lr"] = 1e-4
        batch = _ppo_batch(eager.modules[0], obs_dim, space, 64)
        (out_e, taken_e), (out_f, taken_f) = eager(*batch, rows=64, stop_above=0.5), fast(*batch, rows=64,
                                                                                          stop_above=0.5)
        assert taken_e and taken_f
        assert float(out_e.clipped) > 0
        for a, b in zip(out_e, out_f, strict=True):
            torch.testing.assert_close(b.detach().float(), a.detach().float(), rtol=1e-5, atol=1e-6)
        _assert_same_state(eager, fast)
    assert float(eager.optimizer.state[eager.params[1]]["step"]) == 3


@pytest.mark.parametrize("obs_dim,space", [HOPPER, CARTPOLE], ids=["hopper", "cartpole"])
def test_a_compiled_props_step_equals_the_eager_step_at_full_and_partial_sizes(obs_dim, space, compiles):
    torch.manual_seed(1)
    reference = Policy(obs_dim, space, (64, 64))
    behavior = copy.deepcopy(reference)
    with torch.no_grad():  # phi a step away from theta, so the ratio and the KL term are not trivial
        for p in behavior.parameters():
            p.add_(0.05 * torch.randn_like(p))
    eager, fast = _twin_steps(props_minibatch_loss, (behavior,), 1e-3, 0.5, "kl")
    cfg = PROPSConfig()
    for rows in (240, 112, 240):  # the authors' fixed size (the graph), then a partial one (eager)
        obs, actions = torch.randn(rows, obs_dim), _actions(space, rows)
        with torch.no_grad():
            ref_out = reference.net(obs)
            ref_logp, _ = reference.log_prob_from(ref_out, actions)
        batch = (obs, actions, ref_logp, ref_out, reference.log_std.detach(), cfg)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        (out_e, _), (out_f, _) = eager(*batch, rows=240, stop_above=1.0), fast(*batch, rows=240, stop_above=1.0)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == (1 if rows == 240 else graphs)
        assert float(out_e.kl) > 0
        for a, b in zip(out_e, out_f, strict=True):
            torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-5, atol=1e-6)
        _assert_same_state(eager, fast)


def test_a_step_past_the_early_stop_moves_nothing_eager_or_compiled(compiles):
    torch.manual_seed(2)
    policy, value = Policy(*HOPPER, (64, 64)), ValueNet(HOPPER[0], (64, 64))
    for step in _twin_steps(ppo_minibatch_loss, (policy, value), 3e-4, 0.5, "approx_kl"):
        batch = _ppo_batch(step.modules[0], *HOPPER, 64)
        step(*batch, rows=64, stop_above=None)  # one step taken, so the moments are not zero
        before = [t.clone() for p in step.params for t in (p, *step.optimizer.state[p].values())]
        out, taken = step(*_ppo_batch(step.modules[0], *HOPPER, 64), rows=64, stop_above=0.0)
        assert float(out.approx_kl) > 0 and not taken
        after = [t for p in step.params for t in (p, *step.optimizer.state[p].values())]
        for a, b in zip(before, after, strict=True):
            assert torch.equal(a, b)


def test_a_compiled_step_whose_optimizer_left_its_flat_buffers_runs_eagerly():
    torch.manual_seed(3)
    policy, value = Policy(*HOPPER, (64, 64)), ValueNet(HOPPER[0], (64, 64))
    eager, fast = _twin_steps(ppo_minibatch_loss, (policy, value), 3e-4, 0.5, "approx_kl")
    for step in (eager, fast):  # a parameter re-pointed away from the flat buffer
        step.modules[0].log_std.data = step.modules[0].log_std.data.clone()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    assert fast.optimizer.flat_state() is None
    batch = _ppo_batch(eager.modules[0], *HOPPER, 64)
    eager(*batch, rows=64, stop_above=None)
    fast(*batch, rows=64, stop_above=None)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 0
    for a, b in zip(eager.params, fast.params, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("algo,env_id", [(PPO, "Pendulum-v1"), (PROPS, "CartPole-v1")])
def test_a_compiled_run_follows_the_eager_run(algo, env_id, compiles):
    settings = dict(seed=4, n_steps=256, n_minibatches=4, n_epochs=2, eval_freq=0, checkpoint_freq=0, se_freq=0)
    if algo is PROPS:
        settings.update(behavior_steps=64, props_epochs=2, props_minibatches=2)
    agents = [algo(env_id, compile=flag, **settings) for flag in (False, True, True)]
    for agent in agents:
        agent.learn(512, progress=False)
    # one graph per kind of step (PPO's at the full buffer's minibatch size; PROPS's behavior step),
    # reused across updates and agents
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == (1 if algo is PPO else 2)
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_tanh_matches_torch_tanh_and_its_gradient_everywhere(dtype, compiles):
    """Inside a graph ``networks.tanh`` is an exp form: its values and gradients must be tanh's, and
    stay finite where exp(2x) would overflow. ``fullgraph``: the gradient too comes from the graph."""
    torch.manual_seed(0)
    edges = torch.tensor([0.0, 1e-8, -1e-8, 50.0, -50.0, 1e4, -1e4, 1e-3] * 8).expand(8, 64)
    x = torch.cat([torch.randn(240, 64) * 3, edges]).to(dtype)
    weights = torch.randn(x.shape, dtype=dtype)

    def value_and_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tanh(z), torch.func.grad(lambda u: (tanh(u) * weights).sum())(z)

    y, grad = torch.compile(value_and_grad, dynamic=False, fullgraph=True)(x)
    exact = torch.tanh(x.double())
    atol = 3e-7 if dtype == torch.float32 else 1e-15
    torch.testing.assert_close(y.double(), exact, rtol=0, atol=atol)
    grad_atol = 3 * atol * float(weights.abs().max())
    torch.testing.assert_close(grad.double(), (1 - exact**2) * weights, rtol=0, atol=grad_atol)
    assert torch.equal(y[-8:, 3:7], torch.tensor([1.0, -1.0] * 2, dtype=dtype).expand(8, 4))
    assert not torch.equal(y, torch.tanh(x))  # the graph ran the exp form, not torch.tanh
    assert torch.equal(tanh(x), torch.tanh(x))  # eager stays torch.tanh


def test_a_compiler_failure_is_one_config_error_line(monkeypatch):
    from torch._dynamo.exc import TorchRuntimeError

    def broken(*args, **kwargs):
        raise TorchRuntimeError("inductor could not find a C++ compiler\nlong details")

    monkeypatch.setattr(compiled_module, "_compiled", lambda cpp_wrapper: broken)
    policy, value = Policy(*HOPPER, (64, 64)), ValueNet(HOPPER[0], (64, 64))
    step = GradientStep(ppo_minibatch_loss, (policy, value), make_adam([*policy.parameters(), *value.parameters()],
                                                                       3e-4), 0.5, compile=True)
    with pytest.raises(ConfigError, match=r"^compile=True: torch.compile failed \(inductor could not find a C\+\+ "
                                          r"compiler\); train without it$"):
        step(*_ppo_batch(policy, *HOPPER, 64), rows=64, stop_above=None)


def _stacked_twins(policies, values, lr):
    """Eager and compiled stacked PPO steps over two identical copies of the seeds' networks."""
    from hybridpg.algorithms.seed_updates import _ppo_loss
    from hybridpg.gradient_step import StackedGradientStep
    from hybridpg.stacked import StackedAdam, StackedMLP, StackedPolicy

    steps = []
    for compile_flag in (False, True):
        pols, vals = copy.deepcopy(policies), copy.deepcopy(values)
        params = [[*p.parameters(), *v.parameters()] for p, v in zip(pols, vals, strict=True)]
        policy, value = StackedPolicy.of(pols), StackedMLP.of(vals)
        tensors = [*policy.parameters, *value.parameters]
        adam = StackedAdam(tensors, [make_adam(ps, lr) for ps in params], params)
        layout = (policy.discrete, policy.action_dim, len(policy.parameters))
        steps.append(StackedGradientStep(_ppo_loss, layout, tensors, adam, 0.5, compile=compile_flag))
    return steps


def test_a_compiled_step_of_stacked_seeds_equals_the_eager_one_with_per_seed_stops(compiles):
    """Three Hopper-shaped seeds: both paths take the same per-seed decisions (one seed past its KL
    threshold is left alone) and leave the same parameters, moments and step counts."""
    torch.manual_seed(5)
    policies = [Policy(*HOPPER, (64, 64)) for _ in range(3)]
    values = [ValueNet(HOPPER[0], (64, 64)) for _ in range(3)]
    eager, fast = _stacked_twins(policies, values, 3e-4)
    rows = 64
    for i in range(3):
        obs, actions = torch.randn(3, rows, HOPPER[0]), torch.randn(3, rows, 3)
        with torch.no_grad():
            old_logp = torch.stack([p.log_prob(obs[k], actions[k])[0] for k, p in enumerate(policies)])
        old_logp[1] += 0.5 * torch.randn(rows)  # seed 1's sample KL is far above the others'
        batch = (obs, actions, old_logp, torch.randn(3, rows), torch.randn(3, rows), torch.randn(3, rows), PPOConfig())
        active = torch.ones(3, dtype=torch.bool)
        limit = None if i == 0 else 0.05
        (out_e, taken_e), (out_f, taken_f) = (s(active, *batch, rows=rows, stop_above=limit) for s in (eager, fast))
        assert taken_e.tolist() == taken_f.tolist() == ([True] * 3 if i == 0 else [True, False, True])
        torch.testing.assert_close(out_f.loss.detach(), out_e.loss.detach(), rtol=1e-5, atol=1e-6)
        for a, b in zip(eager.tensors, fast.tensors, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fast.adam.flat_avg, eager.adam.flat_avg, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(fast.adam.flat_avg_sq, eager.adam.flat_avg_sq, rtol=1e-4, atol=1e-12)
        assert torch.equal(fast.adam.steps, eager.adam.steps)
    assert eager.adam.steps.tolist() == [3.0, 1.0, 3.0]


def test_a_seed_that_never_stepped_and_stops_keeps_finite_parameters_eager_or_compiled(compiles):
    """At step count 0 Adam's bias correction is 0 / 0; a seed stopped on its first minibatch must
    come out of the step untouched, not NaN."""
    torch.manual_seed(6)
    policies = [Policy(*HOPPER, (64, 64)) for _ in range(2)]
    values = [ValueNet(HOPPER[0], (64, 64)) for _ in range(2)]
    for step in _stacked_twins(policies, values, 3e-4):
        before = [t.clone() for t in step.tensors]
        obs, actions = torch.randn(2, 64, HOPPER[0]), torch.randn(2, 64, 3)
        with torch.no_grad():
            old_logp = torch.stack([p.log_prob(obs[k], actions[k])[0] for k, p in enumerate(policies)])
        old_logp[1] = -50.0  # seed 1's ratios are huge: its sample KL is far past any threshold
        batch = (obs, actions, old_logp, torch.randn(2, 64), torch.randn(2, 64), torch.randn(2, 64), PPOConfig())
        _, taken = step(torch.ones(2, dtype=torch.bool), *batch, rows=64, stop_above=1.0)
        assert taken.tolist() == [True, False]
        for a, b in zip(before, step.tensors, strict=True):
            assert torch.equal(a[1], b[1]) and not torch.equal(a[0], b[0])
        assert step.adam.steps.tolist() == [1.0, 0.0]


def test_a_compiled_seed_batch_follows_the_eager_batch(compiles):
    from hybridpg.algorithms.seed_batch import SeedBatch

    settings = dict(n_steps=256, n_minibatches=4, n_epochs=2, eval_freq=0, checkpoint_freq=0, se_freq=0,
                    behavior_steps=64, props_epochs=2, props_minibatches=2)
    batches = [SeedBatch.create(PROPS, "Pendulum-v1", [0, 1], compile=flag, **settings) for flag in (False, True)]
    for batch in batches:
        batch.learn(512, progress=False)
    for a, b in zip(*(b.agents for b in batches), strict=True):
        for p, q in zip([*a.policy.parameters(), *a.value.parameters()], [*b.policy.parameters(),
                                                                          *b.value.parameters()], strict=True):
            torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4)
    for batch in batches:
        batch.close()


def test_a_compiled_seed_batch_compiles_each_step_once_while_its_buffer_fills(compiles):
    """PROPS's buffer grows for its first b batches; its minibatches must keep their strides, or every
    behavior update of that time would compile its step again."""
    from hybridpg.algorithms.seed_batch import SeedBatch

    settings = dict(n_steps=256, n_minibatches=4, n_epochs=2, eval_freq=0, checkpoint_freq=0, se_freq=0,
                    behavior_steps=64, props_epochs=2, props_minibatches=2, buffer_batches=2)
    batch = SeedBatch.create(PROPS, "Pendulum-v1", [0, 1], compile=True, **settings)
    batch.learn(1024, progress=False)  # behavior updates on a buffer that grows to its b batches, then full
    batch.close()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2  # the behavior step and PPO's
