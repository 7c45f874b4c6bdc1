"""Soft actor-critic, 2018b form with a learned temperature (spec: hybrid-and-sac.md, SAC).

Per gradient step: critic regression onto y = r + gamma (1 - terminated) (min_j Qtarg_j(s', a')
- alpha log pi(a'|s')), then actor loss mean(alpha log pi(a~|s) - min_j Q_j(s, a~)) on the updated
critic, then the temperature loss -log alpha (log pi + target entropy), then Polyak averaging.

Speed without changing the math: both critics (and both targets) are one ``EnsembleMLP`` whose
layers are batched matmuls, so each evaluation is one call; the gradient step writes its gradients
out (MLP backward, squash, clamp, min over critics, temperature) instead of building an autograd
graph (far fewer ops per step; BENCHMARKS.md, SAC), and the actor loss's pass through the
critic computes only the action gradient; one actor pass draws both the target's a' and the
actor loss's a~; batches are gathered by index from preallocated tensors; Adam is torch's fused
kernel called directly, once for actor and temperature; Polyak averaging is one fused
``_foreach_lerp_``; losses are computed only on the steps that are logged.
The critic sees actions in [-1, 1] (the squashed sample); the env gets them scaled to its bounds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from hybridpg.algorithms.base import Agent, Run
from hybridpg.config import SACConfig
from hybridpg.data.replay import Batch, ReplayBuffer
from hybridpg.ensemble_mlp import EnsembleMLP, native_bf16_matmul
from hybridpg.networks import LOG_2PI
from hybridpg.optim import LeanAdam

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
LOG_2 = math.log(2.0)


class SquashedGaussianActor(nn.Module):
    """u ~ N(mu(s), sigma(s)) with a state-dependent, clamped log-std; a = tanh(u) in [-1, 1]^A."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: tuple[int, ...],
        log_scale_sum: float,
        hidden_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.net = EnsembleMLP(1, obs_dim, hidden, 2 * action_dim, hidden_dtype)  # one member: (mean, log-std)
        self.action_dim = action_dim
        # log|d(env action)/d(tanh u)|: the affine map to the bounds shifts log pi by a constant
        self.log_scale_sum = log_scale_sum

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs)[0].chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def _draw(self, out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(a, log pi, std, noise) from the network output (mean, raw log-std)."""
        mean, raw_log_std = out.chunk(2, dim=-1)
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        noise = torch.randn(mean.shape)  # not randn_like: mean is a strided view, which it fills slowly
        return (*squash(torch.addcmul(mean, std, noise), noise, log_std, self.log_scale_sum), std, noise)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """A squashed sample without its log-density (acting needs none); the same draw as ``sample``."""
        mean, log_std = self(obs)
        return torch.tanh(torch.addcmul(mean, log_std.exp(), torch.randn(mean.shape)))

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized squashed sample and its log-density (of the env-scaled action)."""
        a, logp, _, _ = self._draw(self.net(obs)[0])
        return a, logp

    def sample_saving(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[Any, ...]]:
        """``sample`` without a graph, plus what ``write_grads`` needs (same draws as ``sample``)."""
        out, acts = self.net.forward_saving(obs)
        a, logp, std, noise = self._draw(out[0])
        return a, logp, (acts, out[0].chunk(2, dim=-1)[1], std, noise, a)

    @staticmethod
    def saved_rows(saved: tuple[Any, ...], start: int) -> tuple[Any, ...]:
        """What ``sample_saving`` saved, for its rows from ``start`` on (views)."""
        acts, *per_row = saved
        return ([h[:, start:] for h in acts], *(t[start:] for t in per_row))

    def write_grads(self, obs: torch.Tensor, saved: tuple[Any, ...], g_a: torch.Tensor, g_logp: torch.Tensor) -> None:
        """Weight gradients of a loss L(a, log pi) from dL/da (per row) and dL/d(log pi) (a scalar:
        the losses here are means over rows).

        Through u = mean + std * noise and a = tanh(u): d log pi / du = 2 tanh(u) (the log-det
        term), d log pi / d log_std = -1 (the Gaussian term), du / d log_std = std * noise, and the
        clamp passes gradient only inside [LOG_STD_MIN, LOG_STD_MAX].
        """
        acts, raw_log_std, std, noise, a = saved
        g_u = torch.addcmul(g_a, g_a * a, a, value=-1.0).addcmul_(a, 2.0 * g_logp)
        inside = (raw_log_std >= LOG_STD_MIN) & (raw_log_std <= LOG_STD_MAX)
        g_log_std = (g_u * std).mul_(noise).sub_(g_logp).mul_(inside)
        self.net.write_grads(obs, acts, torch.cat([g_u, g_log_std], dim=-1).unsqueeze(0))


def squash(
    u: torch.Tensor, noise: torch.Tensor, log_std: torch.Tensor, log_scale_sum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh(u) and log pi with the change-of-variables correction.

    log pi = sum(-noise^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2)) - log_scale_sum, where
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) is the exact, overflow-free form; the
    per-dimension constants are summed outside (fewer ops: this runs once per gradient step).
    """
    per_dim = (u + nn.functional.softplus(-2.0 * u)).mul_(2.0).sub_(torch.addcmul(log_std, noise, noise, value=0.5))
    const = u.shape[-1] * (0.5 * LOG_2PI + 2.0 * LOG_2) + log_scale_sum
    return torch.tanh(u), per_dim.sum(-1) - const


class EnsembleCritic(nn.Module):
    """``n`` independent Q(s, a) MLPs as one ``EnsembleMLP``: each evaluation is one call for all."""

    def __init__(self, n: int, in_dim: int, hidden: tuple[int, ...], hidden_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.mlp = EnsembleMLP(n, in_dim, hidden, 1, hidden_dtype)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """Q values, shape (n, batch). ``detached``: no gradient reaches the critic's weights."""
        return self.mlp(torch.cat([obs, actions], dim=-1), detached).squeeze(-1)


class SAC(Agent):
    config_cls: ClassVar[type[SACConfig]] = SACConfig
    config: SACConfig

    def _build(self) -> None:
        cfg = self.config
        assert isinstance(self.action_space, gym.spaces.Box)
        low = np.asarray(self.action_space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.action_space.high, dtype=np.float64).reshape(-1)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            from hybridpg.errors import EnvError

            raise EnvError(f"sac needs a bounded Box action space, {self.env_id} has {self.action_space}")
        self.action_dim = low.size
        self.action_scale, self.action_bias = (high - low) / 2.0, (high + low) / 2.0
        log_scale_sum = float(np.log(self.action_scale).sum())
        hidden_dtype = getattr(torch, cfg.matmul_precision)
        if hidden_dtype == torch.bfloat16 and not native_bf16_matmul():
            warnings.warn("matmul_precision='bfloat16': this CPU has no bf16 matmul units (AVX512-BF16 or AMX), so "
                          "bf16 matmuls are emulated and far slower than float32 (BENCHMARKS.md, SAC)", stacklevel=3)
        self.actor = SquashedGaussianActor(self.obs_dim, self.action_dim, cfg.hidden_sizes, log_scale_sum, hidden_dtype)
        in_dim = self.obs_dim + self.action_dim
        self.critic = EnsembleCritic(2, in_dim, cfg.hidden_sizes, hidden_dtype)
        self.critic_target = EnsembleCritic(2, in_dim, cfg.hidden_sizes, hidden_dtype)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=cfg.autotune)
        self.target_entropy = float(-self.action_dim if cfg.target_entropy is None else cfg.target_entropy)
        # the temperature steps with the actor (same lr and step count): one fused Adam call for both
        self.actor_opt = _adam([*self.actor.parameters(), self.log_alpha], cfg.learning_rate)
        self.critic_opt = _adam(self.critic.parameters(), cfg.learning_rate)
        self.buffer = ReplayBuffer(cfg.buffer_size, self.obs_dim, self.action_dim)
        self._target_params: list[torch.Tensor] = list(self.critic_target.parameters())
        self._params: list[torch.Tensor] = list(self.critic.parameters())
        step: Callable[[Batch, bool, bool], dict[str, torch.Tensor]] = self._gradient_step
        self._step = torch.compile(step) if cfg.compile else step

    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return torch.from_numpy(self._scale(self._act_normalized(obs, deterministic).numpy()))

    def _act_normalized(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        with torch.no_grad():
            if deterministic:
                return torch.tanh(self.actor(obs)[0])
            return self.actor.act(obs)

    def _scale(self, actions: np.ndarray) -> np.ndarray:
        return actions * self.action_scale + self.action_bias

    # -- the math of one gradient step --------------------------------------------------------------
    def target_q(
        self, b: Batch, alpha: torch.Tensor, next_sample: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """y = r + gamma (1 - terminated) (min_j Qtarg_j(s', a') - alpha log pi(a'|s')), a' ~ pi(s');
        ``next_sample`` is (a', log pi(a'|s')) where they are drawn already."""
        with torch.no_grad():
            next_a, next_logp = self.actor.sample(b.next_obs) if next_sample is None else next_sample
            q_next = self.critic_target(b.next_obs, next_a).min(0).values - alpha * next_logp
            return b.rewards + self.config.gamma * (1.0 - b.terminated) * q_next

    def alpha_loss(self, logp: torch.Tensor) -> torch.Tensor:
        """Raises alpha when the policy's entropy (-log pi) is below the target, lowers it above."""
        return -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()

    def _gradient_step(self, b: Batch, actor_step: bool, log: bool = True) -> dict[str, torch.Tensor]:
        """One update; the losses (``log``) are computed only for the steps that are logged."""
        # gradients are written out instead of recorded by autograd: no graph is built, and each
        # one is checked against autograd in tests/test_sac.py
        with torch.no_grad():
            alpha = self.log_alpha.exp()
            n = len(b.obs)
            # one actor pass draws both a' ~ pi(s') for the target and a~ ~ pi(s) for the actor loss:
            # the actor does not change in between (only the critic does)
            obs_both = torch.cat([b.next_obs, b.obs]) if actor_step else b.next_obs
            a_both, logp_both, saved_both = self.actor.sample_saving(obs_both)
            y = self.target_q(b, alpha, (a_both[:n], logp_both[:n]))
            x = torch.cat([b.obs, b.actions], dim=-1)
            q, acts = self.critic.mlp.forward_saving(x)
            err = q.squeeze(-1) - y
            self.critic.mlp.write_grads(x, acts, err.unsqueeze(-1) * (2.0 / len(y)))  # d qf_loss / d q
            self.critic_opt.step_without_hooks()
            out = {"losses/qf_loss": err.pow(2).mean(1).sum(), "losses/q_mean": q.mean()} if log else {}
            if actor_step:
                for k in range(self.config.policy_frequency):  # delayed updates catch up (CleanRL)
                    if k == 0:
                        a, logp, saved = a_both[n:], logp_both[n:], self.actor.saved_rows(saved_both, n)
                    else:
                        a, logp, saved = self.actor.sample_saving(b.obs)
                    xa = torch.cat([b.obs, a], dim=-1)
                    qa, acts_a = self.critic.mlp.forward_saving(xa)  # the critic just updated
                    q_min, which = qa.squeeze(-1).min(0)
                    # d actor_loss / d Q_j = -1/n on each row's smaller Q; d / d log pi = alpha/n
                    g_q = torch.zeros_like(qa).scatter_(0, which.view(1, -1, 1), -1.0 / n)
                    g_a = self.critic.mlp.input_grad(xa, acts_a, g_q, start=self.obs_dim)
                    self.actor.write_grads(b.obs, saved, g_a, alpha / n)
                    if log:
                        out["losses/actor_loss"] = (alpha * logp - q_min).mean()
                        out["losses/entropy"] = -logp.mean()
                    if self.config.autotune:
                        gap = (logp + self.target_entropy).mean()
                        if log:
                            out["losses/alpha_loss"] = -(self.log_alpha * gap)  # = alpha_loss(logp)
                        self.log_alpha.grad = -gap  # d alpha_loss / d log alpha
                    self.actor_opt.step_without_hooks()  # actor and temperature
                    alpha = self.log_alpha.exp()
            if log:
                out["losses/alpha"] = alpha
            torch._foreach_lerp_(self._target_params, self._params, self.config.tau)
        return out

    # -- the loop -----------------------------------------------------------------------------------
    def _train(self, run: Run, total_timesteps: int) -> None:
        cfg = self.config
        n_envs = cfg.num_envs
        start_updates = max(cfg.learning_starts, cfg.batch_size)
        obs = self.vec.obs
        if self.global_step > 0 and len(self.buffer) == 0:
            warnings.warn("resuming SAC without its replay buffer (saved with save_replay_buffer=False): the policy "
                          "refills it first, so this run differs from an uninterrupted one", stacklevel=2)
        elif self.global_step == 0 and run.run_dir is not None and not cfg.save_replay_buffer:
            warnings.warn("SAC with save_replay_buffer=False: checkpoints omit the replay buffer, so a resumed run "
                          "is not bit-exact; save_replay_buffer=True makes it exact (checkpoints then hold up to "
                          "buffer_size transitions)", stacklevel=2)
        while self.global_step < total_timesteps:
            if run.safe_point():  # checkpoints and signal stops only here, where state is complete
                return
            # uniform warm-up only in a fresh run; after a resume without a stored buffer the
            # policy refills it (training resumes once learning_starts transitions are stored)
            if self.updates == 0 and len(self.buffer) < cfg.learning_starts:
                actions = self.np_rng.uniform(-1.0, 1.0, (n_envs, self.action_dim))
            else:
                obs32 = torch.from_numpy(obs.astype(np.float32, copy=False).reshape(n_envs, -1))
                actions = self._act_normalized(obs32, deterministic=False).numpy()
            result = self.vec.step(self._scale(actions))
            self.buffer.add(
                obs, actions, result.rewards, result.final_obs, result.terminated, result.truncated
            )
            obs = result.obs
            self.global_step += n_envs
            if result.finished_returns:
                run.on_episodes(result.finished_returns, result.finished_lengths)
            if len(self.buffer) < start_updates:
                continue
            for _ in range(n_envs):  # one gradient step per env step
                self.updates += 1
                batch = self.buffer.sample(cfg.batch_size, self.torch_rng)
                log = self.updates % cfg.log_freq == 0
                out = self._step(batch, self.updates % cfg.policy_frequency == 0, log)
                if log:
                    metrics = {k: float(v) for k, v in out.items()}
                    metrics["losses/buffer_size"] = float(len(self.buffer))
                    run.after_update(metrics)

    # -- checkpoints --------------------------------------------------------------------------------
    def _algo_state(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "replay": self.buffer.state_dict() if self.config.save_replay_buffer else None,
        }

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if state.get("replay") is not None:
            self.buffer.load_state_dict(state["replay"])


def _adam(params: Any, lr: float) -> LeanAdam:
    # torch's fused Adam kernel (one pass over all parameters), minus torch.optim.Adam's bookkeeping
    return LeanAdam(params, lr=lr, fused=True)
