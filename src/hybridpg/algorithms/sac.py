"""Soft actor-critic, 2018b form with a learned temperature (spec: hybrid-and-sac.md, SAC).

Per gradient step: critic regression onto y = r + gamma (1 - terminated) (min_j Qtarg_j(s', a')
- alpha log pi(a'|s')), then actor loss mean(alpha log pi(a~|s) - min_j Q_j(s, a~)) on the updated
critic, then the temperature loss -log alpha (log pi + target entropy), then Polyak averaging.

The update below is that math with ordinary autograd. The speed lives in the modules it calls,
each pinned to a plain-autograd reference by tests (``tests/test_sac.py``,
``tests/test_ensemble_mlp.py``): both critics (and both targets) are one ``EnsembleMLP`` whose
layers are batched matmuls and whose backward is one autograd node written out, taking the
observation and the action as separate inputs so that only the action gets an input gradient,
and with the critic loss's squared error and the actor loss's min over critics in the same node;
the actor's sample (network, log-std clamp, tanh, log-density) is one such node too
(``squash.py``), and one actor pass draws both the target's a' and the actor loss's a~, its
backward running on the a~ rows only; batches are gathered by index from preallocated tensors;
Adam is torch's fused kernel called directly, once for actor and temperature; Polyak averaging
is one fused ``_foreach_lerp_``; losses are returned only on the steps that are logged.
What autograd itself costs per step (its graph, the engine, the loss nodes): BENCHMARKS.md, SAC.
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
from hybridpg.optim import LeanAdam
from hybridpg.squash import LOG_STD_MAX, LOG_STD_MIN, squashed_gaussian_sample, squashed_gaussian_samples


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

    def _noise(self, rows: int) -> torch.Tensor:
        # drawn contiguous: randn_like on the mean (a strided view) fills it slowly
        return torch.randn(rows, self.action_dim)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """A squashed sample without its log-density (acting needs none); the same draw as ``sample``."""
        mean, log_std = self(obs)
        return torch.tanh(torch.addcmul(mean, log_std.exp(), self._noise(len(obs))))

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized squashed sample and its log-density (of the env-scaled action)."""
        return squashed_gaussian_sample(self.net, obs, self._noise(len(obs)), self.log_scale_sum)

    def sample_pair(
        self, obs_fixed: torch.Tensor, obs: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """``sample`` on two batches from one network pass and one noise draw (the same draws as
        two calls): the first without gradient, the second with it."""
        noise = self._noise(len(obs_fixed) + len(obs))
        return squashed_gaussian_samples(self.net, obs_fixed, obs, noise, self.log_scale_sum)


class EnsembleCritic(nn.Module):
    """``n`` independent Q(s, a) MLPs as one ``EnsembleMLP``: each evaluation is one call for all."""

    def __init__(self, n: int, in_dim: int, hidden: tuple[int, ...], hidden_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.mlp = EnsembleMLP(n, in_dim, hidden, 1, hidden_dtype)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """Q values, shape (n, batch). ``detached``: no gradient reaches the critic's weights."""
        return self.mlp(obs, actions, detached=detached).squeeze(-1)

    def min(self, obs: torch.Tensor, actions: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """min_j Q_j(s, a), shape (batch,)."""
        return self.mlp.min_over_members(obs, actions, detached=detached)

    def squared_error(
        self, obs: torch.Tensor, actions: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_j mean_b (Q_j(s, a) - y)^2, and the Q values (n, batch) without gradient."""
        return self.mlp.squared_error(obs, actions, target=y)


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

    inference_keys = ("actor",)

    @classmethod
    def _inference_act(
        cls, config: Any, obs_dim: int, action_space: gym.Space[Any], algo_state: dict[str, Any], env: Any
    ) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        assert isinstance(action_space, gym.spaces.Box)
        low, high = np.asarray(action_space.low, np.float64).reshape(-1), np.asarray(action_space.high, np.float64)
        scale, bias = (high.reshape(-1) - low) / 2.0, (high.reshape(-1) + low) / 2.0
        actor = SquashedGaussianActor(obs_dim, low.size, config.hidden_sizes, float(np.log(scale).sum()),
                                      getattr(torch, config.matmul_precision))
        actor.load_state_dict(algo_state["actor"])

        def act(obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
            with torch.no_grad():
                a = torch.tanh(actor(obs)[0]) if deterministic else actor.act(obs)
            return torch.from_numpy(a.numpy() * scale + bias)

        return act

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
        return -self.log_alpha * (logp.detach().mean() + self.target_entropy)

    def _gradient_step(self, b: Batch, actor_step: bool, log: bool = True) -> dict[str, torch.Tensor]:
        """One update; the losses (``log``) are returned only for the steps that are logged."""
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        next_sample: tuple[torch.Tensor, torch.Tensor] | None = None
        if actor_step:
            # a' ~ pi(s') for the target and a~ ~ pi(s) for the first actor update from one actor
            # pass (cheaper than two): the actor does not change in between, only the critic does
            next_sample, first_sample = self.actor.sample_pair(b.next_obs, b.obs)
        y = self.target_q(b, alpha, next_sample)
        qf_loss, q = self.critic.squared_error(b.obs, b.actions, y)  # both critics regress onto the same y
        self.critic_opt.zero_grad()
        qf_loss.backward()
        self.critic_opt.step_without_hooks()
        out = {"losses/qf_loss": qf_loss.detach(), "losses/q_mean": q.mean()} if log else {}
        for k in range(cfg.policy_frequency if actor_step else 0):  # delayed updates catch up (CleanRL)
            a, logp = first_sample if k == 0 else self.actor.sample(b.obs)
            q_min = self.critic.min(b.obs, a, detached=True)  # the critic just updated
            actor_loss = (alpha * logp - q_min).mean()
            loss = actor_loss
            if cfg.autotune:
                # alpha enters actor_loss as a constant and log pi enters alpha_loss detached, so
                # the sum's gradient is actor_loss's for the actor and alpha_loss's for log alpha
                alpha_loss = self.alpha_loss(logp)
                loss = actor_loss + alpha_loss
                if log:
                    out["losses/alpha_loss"] = alpha_loss.detach()
            self.actor_opt.zero_grad()
            loss.backward()
            self.actor_opt.step_without_hooks()  # actor and temperature
            alpha = self.log_alpha.detach().exp()
            if log:
                out["losses/actor_loss"] = actor_loss.detach()
                out["losses/entropy"] = -logp.detach().mean()
        if log:
            out["losses/alpha"] = alpha
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._params, cfg.tau)
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
