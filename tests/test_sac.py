"""SAC: the target, the squashed log-prob, the temperature, replay storage, learning, save/load."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import distributions as D

from hybridpg import SAC
from hybridpg.algorithms.sac import LOG_STD_MAX, LOG_STD_MIN, EnsembleCritic, SquashedGaussianActor
from hybridpg.cli import main
from hybridpg.data.replay import Batch, ReplayBuffer
from hybridpg.ensemble_mlp import EnsembleMLP, native_bf16_matmul
from hybridpg.errors import ConfigError, EnvError
from hybridpg.squash import squash
from hybridpg.training.evaluate import evaluate

SMALL: dict[str, Any] = {"hidden_sizes": (32, 32), "learning_starts": 100, "batch_size": 32, "log_freq": 50,
         "eval_freq": 0, "checkpoint_freq": 0, "eval_episodes": 1}


@pytest.fixture
def agent() -> Iterator[SAC]:
    a = SAC("Pendulum-v1", seed=0, **SMALL)
    yield a
    a.close()


def test_target_hand_case_terminated_zeroes_truncated_does_not(agent: SAC) -> None:
    # targets: Q1 = 5, Q2 = 3 everywhere (zero last-layer weights); actor: mean 0, minimal std
    with torch.no_grad():
        agent.critic_target.mlp.w_out.zero_()
        agent.critic_target.mlp.b_out.copy_(torch.tensor([5.0, 3.0]).view(2, 1, 1))
        agent.actor.net.w_out.zero_()
        agent.actor.net.b_out.copy_(torch.tensor([0.0, LOG_STD_MIN]).view(1, 2, 1))
    obs = torch.zeros(3, 3)
    # row 0 terminated, row 1 truncated (stored as terminated=0), row 2 ordinary
    b = Batch(obs, torch.zeros(3, 1), torch.tensor([1.0, 2.0, -1.0]), obs, torch.tensor([1.0, 0.0, 0.0]))
    gamma = agent.config.gamma
    y0 = agent.target_q(b, torch.tensor(0.0))
    assert torch.allclose(y0, torch.tensor([1.0, 2.0 + gamma * 3.0, -1.0 + gamma * 3.0]))
    torch.manual_seed(7)
    y = agent.target_q(b, torch.tensor(0.5))
    torch.manual_seed(7)
    noise = torch.randn(3, 1)
    for i in range(3):  # log pi by hand: Gaussian density of u ~ 0, tanh'(0) = 1, Pendulum scale 2
        logp = -0.5 * float(noise[i]) ** 2 - LOG_STD_MIN - 0.5 * math.log(2 * math.pi) - math.log(2.0)
        expected = float(b.rewards[i]) + gamma * (1 - float(b.terminated[i])) * (3.0 - 0.5 * logp)
        assert float(y[i]) == pytest.approx(expected, rel=1e-5)


def test_squashed_log_prob_matches_transformed_distribution() -> None:
    # float64: the reference inverts tanh, which loses digits near the bounds in float32
    torch.manual_seed(0)
    f64 = torch.float64
    mean, log_std = torch.randn(64, 3, dtype=f64), torch.randn(64, 3, dtype=f64).clamp(-3, 1)
    noise = torch.randn(64, 3, dtype=f64)
    u = mean + log_std.exp() * noise
    scale, bias = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64), torch.tensor([0.0, 1.0, -0.5])
    a, logp = squash(u, noise, log_std, float(scale.log().sum()))
    ref = D.TransformedDistribution(
        D.Normal(mean, log_std.exp()), [D.TanhTransform(), D.AffineTransform(bias, scale)]
    )
    env_action = a * scale + bias
    assert torch.allclose(logp, ref.log_prob(env_action).sum(-1), atol=1e-6)


def test_actor_log_prob_is_a_density_numerically() -> None:
    # 1-D check by change of variables: integrate exp(log pi) over the env action range -> 1
    u = torch.linspace(-12, 12, 200_001).view(-1, 1)
    mean, log_std = torch.tensor(0.3), torch.tensor(0.2)
    a, logp = squash(u, (u - mean) / log_std.exp(), log_std.expand_as(u), math.log(3.0))
    env_a = (a * 3.0).squeeze(-1).double()
    mass = torch.trapezoid(logp.double().exp(), env_a)
    assert float(mass) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("entropy_gap, grows", [(-1.0, True), (1.0, False)])
def test_temperature_moves_toward_target_entropy(agent: SAC, entropy_gap: float, grows: bool) -> None:
    # entropy = -mean log pi; gap < 0 means entropy below the target (-|A| = -1)
    logp = torch.full((16,), -(agent.target_entropy + entropy_gap))
    before = float(agent.log_alpha.detach())
    agent.actor_opt.zero_grad()
    agent.alpha_loss(logp).backward()
    agent.actor_opt.step()  # steps the temperature too; here only it has a gradient
    assert (float(agent.log_alpha.detach()) > before) == grows


def test_ensemble_critic_equals_separate_networks() -> None:
    torch.manual_seed(0)
    critic = EnsembleCritic(2, 5, (16, 8))
    obs, act = torch.randn(10, 3), torch.randn(10, 2)
    x = torch.cat([obs, act], -1)
    q = critic(obs, act)
    for j in range(2):
        h = x
        for i, (w, b) in enumerate(critic.mlp.member_weights(j)):
            h = h @ w + b
            h = torch.relu(h) if i < 2 else h
        assert torch.allclose(q[j], h.squeeze(-1), atol=1e-6)


# -- plain-autograd references: the same math as torch ops, each recorded by autograd ----------------
def plain_mlp(mlp: EnsembleMLP, *xs: torch.Tensor, detached: bool = False) -> torch.Tensor:
    """Each member of ``mlp`` as a plain MLP (``x @ w + b``, ReLU) on its own slices of the weights."""
    x = torch.cat(xs, dim=-1)
    outs = []
    for j in range(mlp.n):
        layers = mlp.member_weights(j)
        h = x
        for i, (w, b) in enumerate(layers):
            h = h @ w.detach() + b.detach() if detached else h @ w + b
            h = torch.relu(h) if i < len(layers) - 1 else h
        outs.append(h)
    return torch.stack(outs)


def plain_squashed_gaussian(
    out: torch.Tensor, noise: torch.Tensor, log_scale_sum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    mean, raw_log_std = out.chunk(2, dim=-1)
    log_std = torch.clamp(raw_log_std, LOG_STD_MIN, LOG_STD_MAX)
    u = mean + log_std.exp() * noise
    gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))  # log(1 - tanh(u)^2)
    return torch.tanh(u), (gaussian - log_det).sum(-1) - log_scale_sum


def use_plain_kernels(agent: SAC) -> None:
    """The agent's networks and squashed sample computed by ``plain_mlp`` and ``plain_squashed_gaussian``."""
    for mlp in (agent.critic.mlp, agent.critic_target.mlp, agent.actor.net):
        mlp.forward = functools.partial(plain_mlp, mlp)  # type: ignore[method-assign]
    actor = agent.actor

    def sample(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return plain_squashed_gaussian(actor.net(obs)[0], torch.randn(len(obs), actor.action_dim), actor.log_scale_sum)

    actor.sample = sample  # type: ignore[method-assign]


def plain_step(agent: SAC, b: Batch) -> dict[str, float]:
    """The update as the textbook writes it: a' and each a~ from their own actor pass, the actor and
    temperature losses back-propagated one after the other, torch.optim's step (with its hooks);
    returns its losses."""
    alpha = agent.log_alpha.detach().exp()
    y = agent.target_q(b, alpha)
    qf_loss = (agent.critic(b.obs, b.actions) - y).pow(2).mean(1).sum()
    agent.critic_opt.zero_grad()
    qf_loss.backward()
    agent.critic_opt.step()
    for _ in range(agent.config.policy_frequency):  # delayed updates catch up, each with a fresh sample
        a, logp = agent.actor.sample(b.obs)
        actor_loss = (alpha * logp - agent.critic(b.obs, a, detached=True).min(0).values).mean()
        alpha_loss = agent.alpha_loss(logp)
        agent.actor_opt.zero_grad()  # the actor's optimizer steps the temperature too
        actor_loss.backward()  # alpha enters detached, so this reaches the actor only
        alpha_loss.backward()  # and log pi detached: this reaches log alpha only
        agent.actor_opt.step()
        alpha = agent.log_alpha.detach().exp()
    with torch.no_grad():  # Polyak averaging
        for target, p in zip(agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
            target.lerp_(p, agent.config.tau)
    return {"losses/qf_loss": float(qf_loss.detach()), "losses/actor_loss": float(actor_loss.detach()),
            "losses/alpha_loss": float(alpha_loss.detach()), "losses/entropy": -float(logp.detach().mean())}


@pytest.mark.parametrize("policy_frequency", [1, 2])
def test_gradient_step_equals_the_plain_autograd_step(policy_frequency: int) -> None:
    """Three gradient steps from the same state and the same noise: every loss, gradient and weight
    (critic, actor through the squash, the clamp and the min over critics, temperature) matches the
    plain step with plain-op networks. With delayed updates (policy_frequency 2) the step's second
    actor update draws its own sample; the first shares the target's actor pass, whose one noise
    draw of 2 x 64 rows is the same numbers as the plain step's two draws of 64."""
    cfg = {**SMALL, "hidden_sizes": (16, 16), "policy_frequency": policy_frequency}
    ours, ref = (SAC("Pendulum-v1", seed=0, **cfg) for _ in range(2))
    use_plain_kernels(ref)
    gen = torch.Generator().manual_seed(1)
    n = 64
    obs, next_obs = torch.randn(n, 3, generator=gen), torch.randn(n, 3, generator=gen)
    b = Batch(obs, torch.rand(n, 1, generator=gen) * 2 - 1, torch.randn(n, generator=gen), next_obs,
              (torch.rand(n, generator=gen) < 0.2).float())
    with torch.no_grad():  # put the log-std pre-activations on both sides of the clamp's upper end
        for agent in (ours, ref):
            agent.actor.net.b_out[0, 1, 0] = 2.0
        raw_log_std = ours.actor.net(b.obs)[0, :, 1]
        assert bool((raw_log_std > LOG_STD_MAX).any()) and bool((raw_log_std < LOG_STD_MAX).any())
    for _ in range(3):
        torch.manual_seed(7)
        metrics = ours._gradient_step(b, True)
        torch.manual_seed(7)
        expected = plain_step(ref, b)
        for key, value in expected.items():
            assert float(metrics[key]) == pytest.approx(value, rel=1e-5, abs=1e-6), key
        for p, q in zip([*ours.critic.parameters(), *ours.actor.parameters(), ours.log_alpha],
                        [*ref.critic.parameters(), *ref.actor.parameters(), ref.log_alpha], strict=True):
            assert p.grad is not None and q.grad is not None
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
        for p, q in zip(ours.critic_target.parameters(), ref.critic_target.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    ours.close()
    ref.close()


HOPPER_OBS, HOPPER_ACT, ROWS = 11, 3, 256


def compare_actor_sample_with_plain(actor: SquashedGaussianActor, paired: bool) -> torch.Tensor:
    """``sample`` (or ``sample_pair``) against the plain MLP and plain squash on the same noise, at a
    256-row batch: (a, log pi) and the gradients of every weight and of the observations, for a
    loss with random weights on both outputs. Returns the raw log-stds of the trained rows."""
    torch.manual_seed(2)
    obs_fixed, obs = torch.randn(ROWS, HOPPER_OBS), torch.randn(ROWS, HOPPER_OBS, requires_grad=True)
    g_a, g_logp = torch.randn(ROWS, HOPPER_ACT), torch.randn(ROWS)
    actor.zero_grad()
    torch.manual_seed(3)
    if paired:
        (a_fixed, logp_fixed), (a, logp) = actor.sample_pair(obs_fixed, obs)
        assert not a_fixed.requires_grad and not logp_fixed.requires_grad
    else:
        a, logp = actor.sample(obs)
    ((a * g_a).sum() + (logp * g_logp).sum()).backward()
    ours = [p.grad for p in actor.parameters()]
    g_obs = obs.grad
    actor.zero_grad()
    obs.grad = None
    torch.manual_seed(3)
    noise = torch.randn(2 * ROWS if paired else ROWS, HOPPER_ACT)
    out = plain_mlp(actor.net, obs)[0]
    a_ref, logp_ref = plain_squashed_gaussian(out, noise[-ROWS:], actor.log_scale_sum)
    ((a_ref * g_a).sum() + (logp_ref * g_logp).sum()).backward()
    torch.testing.assert_close(a, a_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logp, logp_ref, rtol=1e-5, atol=1e-5)
    if paired:
        with torch.no_grad():
            out_fixed = plain_mlp(actor.net, obs_fixed)[0]
            a_fixed_ref, logp_fixed_ref = plain_squashed_gaussian(out_fixed, noise[:ROWS], actor.log_scale_sum)
        torch.testing.assert_close(a_fixed, a_fixed_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logp_fixed, logp_fixed_ref, rtol=1e-5, atol=1e-5)
    for g, p in zip([g_obs, *ours], [obs, *actor.parameters()], strict=True):
        assert g is not None and p.grad is not None
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-5)
    return out.detach()[:, HOPPER_ACT:]


@pytest.mark.parametrize("hidden", [(64, 64), (256, 256)])
@pytest.mark.parametrize("paired", [False, True])
def test_actor_sample_matches_plain_autograd(hidden: tuple[int, int], paired: bool) -> None:
    """The actor's sample node (network, clamp, tanh, log-density in one) at Hopper-v5 shapes, alone
    and paired (one network pass for a' and a~, the first without gradient), with some raw
    log-stds beyond the clamp's upper end and some inside."""
    torch.manual_seed(1)
    actor = SquashedGaussianActor(HOPPER_OBS, HOPPER_ACT, hidden, log_scale_sum=0.7)
    with torch.no_grad():
        actor.net.b_out[0, HOPPER_ACT:] += 2.0
    raw_log_std = compare_actor_sample_with_plain(actor, paired)
    assert bool((raw_log_std > LOG_STD_MAX).any()) and bool((raw_log_std < LOG_STD_MAX).any())


@pytest.mark.parametrize("hidden", [(64, 64), (256, 256)])
@pytest.mark.parametrize("raw_log_stds", [(LOG_STD_MIN, LOG_STD_MAX, 0.5),
                                          (LOG_STD_MIN - 1.0, LOG_STD_MAX + 1.0, LOG_STD_MIN + 1e-3)])
def test_actor_sample_matches_plain_autograd_at_the_clamp_ends(
    hidden: tuple[int, int], raw_log_stds: tuple[float, float, float]
) -> None:
    """Raw log-stds exactly at both clamp ends (where torch.clamp passes gradient), beyond them (where
    it passes none) and just inside: zero log-std rows in the output layer make the raw log-std of
    each action dimension exactly its bias."""
    torch.manual_seed(4)
    actor = SquashedGaussianActor(HOPPER_OBS, HOPPER_ACT, hidden, log_scale_sum=0.0)
    with torch.no_grad():
        actor.net.w_out[0, HOPPER_ACT:] = 0.0
        actor.net.b_out[0, HOPPER_ACT:, 0] = torch.tensor(raw_log_stds)
    for paired in (False, True):
        raw_log_std = compare_actor_sample_with_plain(actor, paired)
        assert torch.equal(raw_log_std, torch.tensor(raw_log_stds).expand(ROWS, -1))
    # the clamp's gradient at each end and beyond, through the log-std bias
    actor.zero_grad()
    a, logp = actor.sample(torch.randn(ROWS, HOPPER_OBS))
    (a.sum() + logp.sum()).backward()
    assert actor.net.b_out.grad is not None
    g_bias = actor.net.b_out.grad[0, HOPPER_ACT:, 0]
    inside = torch.tensor([LOG_STD_MIN <= v <= LOG_STD_MAX for v in raw_log_stds])
    assert bool((g_bias[inside] != 0).all()) and bool((g_bias[~inside] == 0).all())


def test_replay_buffer_wraps_and_samples_stored_rows() -> None:
    buf = ReplayBuffer(5, 2, 1)
    for t in range(7):
        buf.add(np.full((1, 2), t), np.full((1, 1), t), np.array([t]), np.full((1, 2), t + 1),
                np.array([False]), np.array([t % 2 == 0]))
    assert len(buf) == 5 and buf.pos == 2
    assert sorted(buf.rewards.tolist()) == [2, 3, 4, 5, 6]
    b = buf.sample(100, torch.Generator().manual_seed(0))
    assert torch.equal(b.next_obs[:, 0], b.obs[:, 0] + 1) and torch.equal(b.actions[:, 0], b.rewards)


def test_buffer_keeps_true_final_obs_on_truncation(agent: SAC) -> None:
    agent.learn(450, progress=False)  # Pendulum truncates at 200 steps and never terminates
    buf, n = agent.buffer, len(agent.buffer)
    trunc = buf.truncated[:n].nonzero().flatten().tolist()
    assert trunc == [199, 399]
    assert not buf.terminated[:n].any()
    for i in range(n - 1):
        same = torch.equal(buf.next_obs[i], buf.obs[i + 1])
        assert same != (i in trunc)  # at a truncation next_obs is the final obs, not the reset obs
    assert agent.updates == 450 - 100 + 1


def test_discrete_action_space_is_refused() -> None:
    with pytest.raises(EnvError, match="Box action space"):
        SAC("CartPole-v1")


def test_cli_discrete_env_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["train", "--algo", "sac", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: hybridpg train: sac needs a Box action space")
    assert not (tmp_path / "r").exists()


def test_cli_train_and_save_load_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--total-timesteps", "300"]
    args += ["--run-dir", str(run)]
    args += "--hidden-sizes 32,32 --learning-starts 100 --batch-size 32 --log-freq 100".split()
    args += "--eval-freq 200 --checkpoint-freq 100 --eval-episodes 1 --save-replay-buffer true".split()
    assert main(args) == 0
    lines = (run / "metrics.jsonl").read_text()
    keys = ("losses/qf_loss", "losses/actor_loss", "losses/alpha", "losses/alpha_loss", "eval/return_mean")
    for key in keys:
        assert key in lines
    loaded = SAC.load(run)
    assert isinstance(loaded, SAC) and loaded.global_step == 300 and len(loaded.buffer) == 300
    obs = np.random.default_rng(0).normal(size=(20, 3))
    ref = SAC("Pendulum-v1", seed=5, **SMALL)
    ref.load_state_dict(loaded.state_dict())
    assert np.array_equal(loaded.predict(obs)[0], ref.predict(obs)[0])
    path = tmp_path / "agent.pt"
    loaded.save(path)
    again = SAC.load(path)
    assert isinstance(again, SAC)
    assert np.array_equal(again.predict(obs)[0], loaded.predict(obs)[0])
    assert torch.equal(again.buffer.obs[:300], loaded.buffer.obs[:300])
    assert np.all(np.abs(again.predict(obs)[0]) <= 2.0)
    for a in (loaded, ref, again):
        a.close()


def test_checkpoint_without_replay_buffer_resumes_with_policy_refill(tmp_path: Path) -> None:
    a = SAC("Pendulum-v1", seed=1, **SMALL)
    a.learn(200, progress=False)
    a.save(tmp_path / "a.pt")
    b = SAC.load(tmp_path / "a.pt")
    assert isinstance(b, SAC) and len(b.buffer) == 0 and b.updates == a.updates
    b.learn(150, progress=False, reset=False)  # refills 100 rows with the policy, then trains again
    assert b.updates == a.updates + 51
    a.close()
    b.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:matmul_precision='bfloat16'")  # the emulated-bf16 notice, tested below
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_sac_solves_pendulum(precision: str) -> None:
    agent = SAC("Pendulum-v1", seed=0, hidden_sizes=(64, 64), learning_starts=1000, eval_freq=0,
                checkpoint_freq=0, matmul_precision=precision)
    agent.learn(7000, progress=False)
    result = evaluate(agent, "Pendulum-v1", n_episodes=10, seed=123)
    agent.close()
    assert result.mean > -300, result.returns


def test_bf16_hidden_matmuls_track_fp32_and_keep_fp32_state() -> None:
    """matmul_precision='bfloat16' rounds only hidden-to-hidden matmul operands: outputs stay close
    to the fp32 network with the same weights, and every parameter and output stays fp32."""
    fp32 = SAC("Pendulum-v1", seed=0, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bf16 = SAC("Pendulum-v1", seed=0, **{**SMALL, "matmul_precision": "bfloat16"})
    # the slow emulated path is announced exactly where the CPU lacks bf16 units
    emulated = [w for w in caught if "no bf16 matmul units" in str(w.message)]
    assert len(emulated) == (0 if native_bf16_matmul() else 1)
    obs, actions = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    q32, q16 = fp32.critic(obs, actions), bf16.critic(obs, actions)
    mean32, mean16 = fp32.actor(obs)[0], bf16.actor(obs)[0]
    assert q16.dtype == mean16.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in bf16.critic.parameters())
    assert not torch.equal(q32, q16)  # the bf16 path really ran
    assert torch.allclose(q32, q16, rtol=0.02, atol=0.02) and torch.allclose(mean32, mean16, rtol=0.02, atol=0.02)
    fp32.close()
    bf16.close()


def test_matmul_precision_rejects_unknown_dtype() -> None:
    with pytest.raises(ConfigError, match="matmul_precision"):
        SAC("Pendulum-v1", seed=0, **{**SMALL, "matmul_precision": "float16"})


def test_runs_without_the_replay_buffer_in_checkpoints_say_resume_is_not_exact(tmp_path: Path) -> None:
    from hybridpg import SAC
    from hybridpg.algorithms.base import Agent

    small = {"hidden_sizes": (16, 16), "learning_starts": 64, "batch_size": 32, "buffer_size": 1000,
             "log_freq": 32, "eval_freq": 64, "eval_episodes": 1, "checkpoint_freq": 64}
    with pytest.warns(UserWarning, match="save_replay_buffer=False: checkpoints omit the replay buffer"):
        SAC("Pendulum-v1", seed=0, **small).learn(128, run_dir=tmp_path / "run", progress=False)
    agent = Agent.load(tmp_path / "run" / "checkpoints" / "latest.pt")
    with pytest.warns(UserWarning, match="resuming SAC without its replay buffer"):
        agent.learn(64, reset=False, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with the buffer saved, neither warning
        SAC("Pendulum-v1", seed=0, save_replay_buffer=True, **small).learn(64, run_dir=tmp_path / "exact",
                                                                          progress=False)
