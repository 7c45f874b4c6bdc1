"""HNPG: hybrid natural policy gradient (Zhou et al., 2024; spec: hybrid-and-sac.md).

Every iteration: collect ``n_steps`` on-policy transitions; refit the critic Q(s, a) for
``critic_steps`` Adam steps on (a) Monte-Carlo regression of on-policy samples and (b) fitted
policy evaluation on ``offline_batch`` dataset transitions, target r + gamma (1 - terminated)
V(s') with V(s') = E_{a'~pi} Q(s', a') (exact over the actions for Discrete, ``v_samples`` samples
for Box; an unbiased, lower-variance form of the single-sample Q(s', a')); then one natural-gradient
step on the union of on-policy states (GAE advantages from V) and offline states (a fresh action
from pi, advantage Q(s, a) - V(s)), with the Fisher on the same union and a KL-constrained line search.

``finite_horizon``: one policy and one critic per step h < H, critics refit backward from H-1 to 0
so that the offline target at h bootstraps from the already refit Q_{h+1}. While collecting, h is
the step counter of the episode; ``predict`` (no counter) decodes h from the observation with the
env's ``decode_observation`` (the combination lock), and that is why this mode feeds raw
observations to the networks (the lock's are O(1) anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from hybridpg.algorithms.base import Agent, Run
from hybridpg.algorithms.bc import dataset_actions, load_offline
from hybridpg.algorithms.npg import npg_step
from hybridpg.config import HNPGConfig
from hybridpg.data.rollout import HistoryBuffer, compute_gae
from hybridpg.envs.vector import make_env_fn
from hybridpg.errors import ConfigError, DatasetError, EnvError, HybridPGError
from hybridpg.networks import Policy, QNet, draw_noise


def td_targets(
    rewards: torch.Tensor, terminated: torch.Tensor, next_v: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Fitted-policy-evaluation targets r + gamma (1 - terminated) V(s'); truncation keeps the bootstrap."""
    return rewards + gamma * (1.0 - terminated) * next_v


def critic_loss(
    q_on: torch.Tensor, mc_returns: torch.Tensor, q_off: torch.Tensor, targets: torch.Tensor, td_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, MC term, TD term): MSEs, total = MC + td_weight * TD (an empty part counts 0)."""
    mc = (q_on - mc_returns).pow(2).mean() if q_on.numel() else torch.zeros(())
    td = (q_off - targets).pow(2).mean() if q_off.numel() else torch.zeros(())
    return mc + td_weight * td, mc, td


class HNPG(Agent):
    """Hybrid NPG: on-policy natural gradient whose critic also learns from an offline dataset."""

    config_cls: ClassVar[type[HNPGConfig]] = HNPGConfig
    config: HNPGConfig

    def _build(self) -> None:
        cfg = self.config
        heads = cfg.horizon if cfg.finite_horizon else 1
        self.continuous = isinstance(self.action_space, gym.spaces.Box)
        self.policies = [
            Policy(self.obs_dim, self.action_space, cfg.policy_hidden_sizes) for _ in range(heads)
        ]
        self.critics = [QNet(self.obs_dim, self.action_space, cfg.hidden_sizes) for _ in range(heads)]
        self.action_dim = self.policies[0].action_dim
        self.critic_opts = [torch.optim.Adam(c.parameters(), lr=cfg.learning_rate) for c in self.critics]
        try:
            assert cfg.offline_dataset is not None  # validated by the config
            data = load_offline(cfg.offline_dataset, cfg.offline_root, self.vec)
            steps_in = np.arange(data.n_transitions) - data.episode_offsets[data.episode_ids]
            self._decode: Callable[[np.ndarray], tuple[int, int]] | None = None
            if cfg.finite_horizon:
                self.obs_norm.enabled = False  # predict must decode h from the raw observation
                env = self.vec.envs[0] if self.vec.envs else None
                self._decode = getattr(env.unwrapped, "decode_observation", None) if env is not None else None
                if self._decode is None:
                    raise ConfigError(
                        "finite_horizon needs a sync env with decode_observation (the combination lock)"
                    )
                if steps_in.max(initial=0) >= cfg.horizon:
                    raise DatasetError(
                        f"dataset {cfg.offline_dataset!r} has episodes longer than horizon={cfg.horizon}"
                    )
        except HybridPGError:
            self.vec.close()
            raise
        n = data.n_transitions
        self.off_obs = data.observations.reshape(n, -1).astype(np.float64)
        self.off_next = data.next_observations.reshape(n, -1).astype(np.float64)
        self.off_actions = dataset_actions(data, self.action_space)
        self.off_rewards = torch.from_numpy(data.rewards.astype(np.float32))
        self.off_term = torch.from_numpy(data.terminations.astype(np.float32))
        self.off_heads = steps_in if cfg.finite_horizon else np.zeros(n, dtype=np.int64)
        self.obs_norm.update(self.vec.obs)
        self.obs_norm.update(self.off_obs)  # same statistics for offline and online states
        rows = cfg.n_steps // cfg.num_envs
        action_shape = (self.action_dim,) if self.continuous else ()
        self.buffer = HistoryBuffer(rows, cfg.num_envs, self.vec.obs_shape, action_shape)
        self.buffer_heads = np.zeros((rows, cfg.num_envs), dtype=np.int64)

    # -- acting ---------------------------------------------------------------------------------------
    def _norm(self, obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.obs_norm(obs.reshape(obs.shape[0], -1)).astype(np.float32))

    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return hnpg_act(self.policies, self._decode, self.config.horizon, obs, deterministic)

    inference_keys = ("policies",)

    @classmethod
    def _inference_act(
        cls, config: Any, obs_dim: int, action_space: gym.Space[Any], algo_state: dict[str, Any], env: Any
    ) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        policies = [Policy(obs_dim, action_space, config.policy_hidden_sizes) for _ in algo_state["policies"]]
        for policy, saved in zip(policies, algo_state["policies"], strict=True):
            policy.load_state_dict(saved)
        decode = None
        if config.finite_horizon:  # the step h comes from the observation, which only the env can decode
            made = make_env_fn(env, **config.env_kwargs)()
            decode = getattr(made.unwrapped, "decode_observation", None)
            if not isinstance(env, gym.Env):  # built here; an instance the caller gave stays open
                made.close()
            if decode is None:
                raise ConfigError("finite_horizon needs an env with decode_observation (the combination lock)")
        return functools.partial(hnpg_act, policies, decode, config.horizon)

    # -- the loop -------------------------------------------------------------------------------------
    def _train(self, run: Run, total_timesteps: int) -> None:
        while self.global_step < total_timesteps:
            if run.safe_point():  # checkpoints and stops only here, between iterations
                return
            self._collect(run)
            metrics = self._update()
            self.updates += 1
            run.after_update(metrics)

    def _collect(self, run: Run) -> None:
        cfg, rows = self.config, self.buffer.steps
        noise = draw_noise(rows, cfg.num_envs, self.action_dim, self.continuous, self.torch_rng)
        with torch.inference_mode():
            for i in range(rows):
                heads = (
                    self.vec.episode_lengths.copy()
                    if cfg.finite_horizon
                    else np.zeros(cfg.num_envs, np.int64)
                )
                if cfg.finite_horizon and heads.max() >= cfg.horizon:
                    raise EnvError(
                        f"{self.env_id} ran past horizon={cfg.horizon}; set horizon to the episode length"
                    )
                obs_raw = self.vec.obs
                actions = head_actions(self.policies, self._norm(obs_raw), heads, noise[i]).numpy()
                result = self.vec.step(self.vec.clip_actions(actions) if self.continuous else actions)
                self.buffer.add(
                    obs_raw, actions, result.rewards, result.terminated, result.truncated, result.final_obs
                )
                self.buffer_heads[(self.buffer.pos - 1) % rows] = heads
                self.obs_norm.update(result.obs)
                self.global_step += cfg.num_envs
                if result.finished_returns:
                    run.on_episodes(result.finished_returns, result.finished_lengths)

    def _values(self, obs: torch.Tensor, heads: np.ndarray) -> torch.Tensor:
        out = torch.zeros(obs.shape[0])
        for k in np.unique(heads):
            rows = torch.from_numpy(np.flatnonzero(heads == k))
            out[rows] = self.critics[int(k)].value(
                obs[rows], self.policies[int(k)], self.config.v_samples, self.torch_rng
            )
        return out

    @torch.no_grad()
    def _update(self) -> dict[str, float]:
        cfg, buf = self.config, self.buffer
        last = len(self.critics) - 1
        t, e = buf.steps, buf.num_envs
        obs, next_obs = self._norm(buf.obs.reshape(t * e, -1)), self._norm(buf.next_obs.reshape(t * e, -1))
        actions = torch.from_numpy(buf.actions.reshape(t * e, *buf.actions.shape[2:]).astype(np.float32))
        heads = self.buffer_heads.reshape(-1)
        next_heads = np.minimum(heads + 1, last) if cfg.finite_horizon else heads

        def gae(lam: float) -> tuple[np.ndarray, np.ndarray]:
            v = self._values(obs, heads).numpy().astype(np.float64).reshape(t, e)
            nv = self._values(next_obs, next_heads).numpy().astype(np.float64).reshape(t, e)
            if cfg.finite_horizon:  # there is no Q_H: the value after the last step is 0
                nv[(self.buffer_heads == last)] = 0.0
            return compute_gae(buf.rewards, v, nv, buf.terminated, buf.truncated, cfg.gamma, lam), v

        adv1, v = gae(1.0)  # lambda = 1: the Monte-Carlo return, bootstrapped only where the batch cuts
        mc_returns = torch.from_numpy((adv1 + v).reshape(-1).astype(np.float32))
        idx = self.np_rng.integers(0, len(self.off_rewards), cfg.offline_batch)
        off_obs, off_next = self._norm(self.off_obs[idx]), self._norm(self.off_next[idx])
        off_act, off_heads = self.off_actions[idx], self.off_heads[idx]
        metrics: dict[str, float] = {}
        for k in range(last, -1, -1):  # backward: the target at h uses the refit Q_{h+1}
            on, off = np.flatnonzero(heads == k), np.flatnonzero(off_heads == k)
            nk = k + 1 if cfg.finite_horizon else k
            next_v = (
                self.critics[nk].value(off_next[off], self.policies[nk], cfg.v_samples, self.torch_rng)
                if nk <= last
                else torch.zeros(len(off))
            )
            targets = td_targets(self.off_rewards[idx[off]], self.off_term[idx[off]], next_v, cfg.gamma)
            metrics.update(
                self._fit_critic(
                    k, (obs[on], actions[on], mc_returns[on]), (off_obs[off], off_act[off], targets)
                )
            )
        adv, _ = gae(cfg.gae_lambda)
        adv_t = torch.from_numpy(adv.reshape(-1).astype(np.float32))
        steps: list[dict[str, float]] = []
        for k in range(last + 1):
            on, off = np.flatnonzero(heads == k), np.flatnonzero(off_heads == k)
            policy, critic = self.policies[k], self.critics[k]
            s_off = off_obs[off]
            a_off = policy.sample(
                s_off,
                torch.randn(len(off), policy.action_dim, generator=self.torch_rng)
                if self.continuous
                else torch.rand(len(off), generator=self.torch_rng),
            )
            off_adv = critic(s_off, a_off) - critic.value(s_off, policy, cfg.v_samples, self.torch_rng)
            u_obs, u_act = torch.cat([obs[on], s_off]), torch.cat([actions[on], a_off.to(actions.dtype)])
            u_adv = torch.cat([adv_t[on], off_adv])
            if u_adv.numel() < 2:
                continue
            u_adv = (u_adv - u_adv.mean()) / (u_adv.std() + 1e-8)
            with torch.enable_grad():
                steps.append(npg_step(policy, u_obs, u_act, u_adv, cfg))
        for key in ("losses/kl", "losses/npg_improvement", "losses/line_search_frac"):
            metrics[key] = float(np.mean([s[key] for s in steps])) if steps else 0.0
        return metrics

    def _fit_critic(
        self, k: int, on: tuple[torch.Tensor, ...], off: tuple[torch.Tensor, ...]
    ) -> dict[str, float]:
        cfg, critic, opt = self.config, self.critics[k], self.critic_opts[k]
        mc = td = torch.zeros(())
        with torch.enable_grad():
            for _ in range(cfg.critic_steps):
                i = torch.randint(
                    0, max(len(on[0]), 1), (min(cfg.critic_batch, len(on[0])),), generator=self.torch_rng
                )
                j = torch.randint(
                    0, max(len(off[0]), 1), (min(cfg.critic_batch, len(off[0])),), generator=self.torch_rng
                )
                loss, mc, td = critic_loss(critic(on[0][i], on[1][i]), on[2][i], critic(off[0][j], off[1][j]),
                                           off[2][j], cfg.td_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return {"losses/critic_mc": float(mc), "losses/critic_td": float(td)}

    # -- state ----------------------------------------------------------------------------------------
    def _algo_state(self) -> dict[str, Any]:
        return {
            "policies": [p.state_dict() for p in self.policies],
            "critics": [c.state_dict() for c in self.critics],
            "critic_opts": [o.state_dict() for o in self.critic_opts],
        }

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        parts = zip(self.policies, self.critics, self.critic_opts, state["policies"], state["critics"],
                    state["critic_opts"], strict=True)
        for policy, critic, opt, p_state, c_state, o_state in parts:
            policy.load_state_dict(p_state)
            critic.load_state_dict(c_state)
            opt.load_state_dict(o_state)


def head_actions(policies: list[Policy], obs: torch.Tensor, heads: np.ndarray, noise: torch.Tensor | None
                 ) -> torch.Tensor:
    """Per-head sample (noise given) or mode; ``heads`` picks each row's policy."""
    first = policies[0]
    out = torch.zeros((obs.shape[0],) if first.discrete else (obs.shape[0], first.action_dim),
                      dtype=torch.int64 if first.discrete else torch.float32)
    for k in np.unique(heads):
        rows = torch.from_numpy(np.flatnonzero(heads == k))
        policy = policies[int(k)]
        out[rows] = (policy.mode(obs[rows]) if noise is None else policy.sample(obs[rows], noise[rows])).to(out.dtype)
    return out


def hnpg_act(policies: list[Policy], decode: Callable[[np.ndarray], tuple[int, int]] | None, horizon: int,
             obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
    """Actions for normalized observations; with ``decode`` (finite horizon) each row's head is its step h."""
    heads = np.zeros(obs.shape[0], dtype=np.int64)
    if decode is not None:
        heads = np.array([min(decode(o)[1], horizon - 1) for o in obs.numpy()])
    if deterministic:
        return head_actions(policies, obs, heads, None)
    dim = policies[0].action_dim
    noise = torch.rand(obs.shape[0]) if policies[0].discrete else torch.randn(obs.shape[0], dim)
    return head_actions(policies, obs, heads, noise)
