"""Behaviour cloning from a Minari dataset: a warm start and a concurrent BC term for on-policy agents.

Warm start (``bc_steps`` > 0): before the first env step, (1) the observation normalizer absorbs the
dataset's observations, so the cloned policy sees inputs normalized exactly as it will online;
(2) the actor maximizes log pi(a|s) on dataset actions for ``bc_steps`` Adam steps; (3) with
``bc_critic`` the value net regresses onto the dataset's Monte-Carlo returns, expressed in the
units PPO's critic learns online (see ``_critic_targets``).

Concurrent term (``bc_coef`` = C > 0): ``bc_online_steps`` BC steps after every PPO update. With
Adam a constant factor on a loss cancels out of the step, so C scales the BC step size
(lr = C * bc_lr) instead of the loss.

Continuous dataset actions are clipped to the action bounds: the env only ever executes clipped
actions, so the clipped action is the one whose consequences the data records. The Gaussian
log-prob is finite for any action, so this is about meaning, not numerical stability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from hybridpg.config import OnPolicyConfig
from hybridpg.data.normalizers import ObsNormalizer, RewardScaler
from hybridpg.envs.vector import VecEnv
from hybridpg.networks import Policy, ValueNet

if TYPE_CHECKING:
    from hybridpg.data.datasets import OfflineDataset


def load_offline(dataset: str, root: str | None, vec: VecEnv) -> OfflineDataset:
    """Load a dataset and check its spaces against the agent's env (``DatasetError`` if they differ)."""
    # Minari/h5py/scipy load only when a dataset is actually used (keeps `import hybridpg` light)
    from hybridpg.data.datasets import load_dataset

    # any sub-env (or the async vector env) carries the spaces; they also stand in for missing ones
    target: Any = vec.envs[0] if vec.envs else vec._async
    return load_dataset(dataset, root=root, env=target)


def dataset_actions(data: OfflineDataset, space: gym.Space[Any]) -> torch.Tensor:
    """Dataset actions as a float32 tensor, clipped to the bounds for Box spaces (module doc)."""
    actions = data.actions
    if isinstance(space, gym.spaces.Box):
        actions = np.clip(actions, space.low, space.high)
    return torch.from_numpy(np.ascontiguousarray(actions, dtype=np.float32))


def discounted_running_returns(data: OfflineDataset, gamma: float) -> np.ndarray:
    """Forward discounted sums R_t = gamma * R_{t-1} + r_t within each episode (what RewardScaler tracks)."""
    from scipy.signal import lfilter  # lazy: scipy.signal is heavy to import

    out = np.zeros(data.n_transitions)
    rewards = data.rewards.astype(np.float64)
    for start, end in zip(data.episode_offsets[:-1], data.episode_offsets[1:], strict=True):
        if end > start:
            out[start:end] = lfilter([1.0], [1.0, -gamma], rewards[start:end])
    return out


class BehaviorCloner:
    """The dataset tensors and BC optimizers for a policy and value net (it trains them in place)."""

    def __init__(
        self,
        data: OfflineDataset,
        policy: Policy,
        value: ValueNet,
        obs_norm: ObsNormalizer,
        reward_scaler: RewardScaler,
        action_space: gym.Space[Any],
        config: OnPolicyConfig,
        rng: torch.Generator,
    ) -> None:
        self.data = data
        self.policy, self.value = policy, value
        self.obs_norm, self.reward_scaler = obs_norm, reward_scaler
        self.config = config
        self.rng = rng
        self.obs_raw = data.observations.reshape(data.n_transitions, -1).astype(np.float64)
        self.actions = dataset_actions(data, action_space)
        self.actor_opt = torch.optim.Adam(policy.parameters(), lr=config.bc_lr)
        self.critic_opt = torch.optim.Adam(value.parameters(), lr=config.bc_lr)
        self.pretrained = False

    def _obs(self, idx: torch.Tensor) -> torch.Tensor:
        obs = self.obs_norm(self.obs_raw[idx.numpy()])
        return torch.from_numpy(obs.astype(np.float32))

    def _batches(self, steps: int) -> torch.Tensor:
        n = self.data.n_transitions
        size = min(self.config.bc_batch_size, n)
        return torch.randint(0, n, (steps, size), generator=self.rng)

    def actor_steps(self, steps: int, lr: float) -> float:
        """``steps`` Adam steps on -log pi(a|s) over random minibatches; returns the last loss."""
        for group in self.actor_opt.param_groups:
            group["lr"] = lr
        loss = torch.zeros(())
        with torch.inference_mode(False), torch.enable_grad():
            for idx in self._batches(steps):
                logp, _ = self.policy.log_prob(self._obs(idx), self.actions[idx])
                loss = -logp.mean()
                self.actor_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.actor_opt.step()
        return float(loss.detach())

    def _critic_targets(self) -> torch.Tensor:
        """Monte-Carlo returns in the critic's online units.

        PPO's value targets are returns of *scaled* rewards r / sigma, where sigma is the
        RewardScaler's running std of the discounted return. So the scaler first absorbs the
        dataset's discounted running returns (as it would had the data been collected online), then
        the targets are G_t / sigma: the scaling is linear, so this equals the return of the scaled
        rewards (the scaler's per-reward clip at 10 sigma is not applied). Returns of truncated
        episodes stop at the truncation (no bootstrap), so they underestimate near the time limit.
        """
        gamma = self.config.gamma
        returns = self.data.mc_returns(gamma).astype(np.float64)
        scaler = self.reward_scaler
        if scaler.enabled:
            scaler.rms.update(discounted_running_returns(self.data, gamma))
            returns = returns / np.sqrt(scaler.rms.var + scaler.eps)
        return torch.from_numpy(returns.astype(np.float32))

    def critic_steps(self, steps: int) -> float:
        targets = self._critic_targets()
        loss = torch.zeros(())
        with torch.inference_mode(False), torch.enable_grad():
            for idx in self._batches(steps):
                loss = 0.5 * (self.value(self._obs(idx)) - targets[idx]).pow(2).mean()
                self.critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.critic_opt.step()
        return float(loss.detach())

    # -- the two hooks the on-policy loop calls ------------------------------------------------------
    def warm_start(self) -> dict[str, float]:
        """Normalizer statistics from the dataset, then BC pre-training; its losses."""
        cfg = self.config
        self.obs_norm.update(self.obs_raw)
        metrics: dict[str, float] = {}
        if cfg.bc_steps > 0:
            metrics["losses/bc_pretrain_loss"] = self.actor_steps(cfg.bc_steps, cfg.bc_lr)
            if cfg.bc_critic:
                metrics["losses/bc_value_loss"] = self.critic_steps(cfg.bc_steps)
        self.pretrained = True
        return metrics

    def online_step(self) -> dict[str, float]:
        """The concurrent BC term after a PPO update (nothing when bc_coef is 0)."""
        cfg = self.config
        if cfg.bc_coef <= 0:
            return {}
        return {"losses/bc_loss": self.actor_steps(cfg.bc_online_steps, cfg.bc_coef * cfg.bc_lr)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "pretrained": self.pretrained,
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pretrained = bool(state["pretrained"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
