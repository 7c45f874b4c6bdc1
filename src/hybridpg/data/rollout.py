"""The on-policy history buffer (FIFO of the last b*n transitions) and GAE.

Storage keeps RAW observations and RAW rewards. Before every update the algorithm normalizes
them with the *current* statistics and recomputes log-probs, values and advantages under the
current networks, which is what lets old batches be reused as if they were fresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hybridpg.data.replay import require_memory


class HistoryBuffer:
    """Time-major ring buffer of ``steps`` rows by ``num_envs`` columns."""

    def __init__(self, steps: int, num_envs: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...]) -> None:
        row = 2 * int(np.prod(obs_shape)) + int(np.prod(action_shape)) + 3  # float64 obs, next_obs, actions, reward
        require_memory(steps * num_envs * row * 8, f"an on-policy buffer of {steps * num_envs:,} steps")
        self.steps = steps
        self.num_envs = num_envs
        self.obs = np.zeros((steps, num_envs, *obs_shape))
        # the observation after each step: the true final one where the episode ended
        self.next_obs = np.zeros((steps, num_envs, *obs_shape))
        self.actions = np.zeros((steps, num_envs, *action_shape))
        self.rewards = np.zeros((steps, num_envs))
        self.terminated = np.zeros((steps, num_envs), dtype=bool)
        self.truncated = np.zeros((steps, num_envs), dtype=bool)
        self.pos = 0
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size == self.steps

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_obs: np.ndarray,
    ) -> None:
        p = self.pos
        self.obs[p] = obs
        self.actions[p] = actions.reshape(self.actions.shape[1:])
        self.rewards[p] = rewards
        self.terminated[p] = terminated
        self.truncated[p] = truncated
        self.next_obs[p] = next_obs
        self.pos = (p + 1) % self.steps
        self.size = min(self.size + 1, self.steps)

    def time_order(self, skip_oldest: int = 0) -> np.ndarray:
        """Row indices from oldest to newest, optionally leaving out the oldest rows."""
        start = self.pos - self.size
        return (start + np.arange(skip_oldest, self.size)) % self.steps

    def state_dict(self) -> dict[str, Any]:
        return {
            "obs": torch.from_numpy(self.obs.copy()),
            "next_obs": torch.from_numpy(self.next_obs.copy()),
            "actions": torch.from_numpy(self.actions.copy()),
            "rewards": torch.from_numpy(self.rewards.copy()),
            "terminated": torch.from_numpy(self.terminated.copy()),
            "truncated": torch.from_numpy(self.truncated.copy()),
            "pos": self.pos,
            "size": self.size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated"):
            value = state[name].numpy()
            if value.shape != getattr(self, name).shape:
                raise ValueError(f"buffer field {name} has shape {value.shape}, expected {getattr(self, name).shape}")
            setattr(self, name, value.copy())
        self.pos = int(state["pos"])
        self.size = int(state["size"])


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalized advantage estimates over (T, E) arrays in time order.

    ``next_values[t]`` is V of the observation that followed step t: on truncation that is the
    true final observation, so a time limit bootstraps; only termination zeroes the bootstrap.
    Any episode end (either kind) stops the advantage from flowing back across the boundary.
    """
    delta = rewards + gamma * next_values * (1.0 - terminated) - values
    carry = gamma * lam * (1.0 - (terminated | truncated))
    adv = np.empty_like(delta)
    if delta.shape[1] == 1:
        # one env: a loop over Python floats beats numpy's per-row dispatch on 1-element rows
        d, c = delta[:, 0].tolist(), carry[:, 0].tolist()
        out = [0.0] * len(d)
        last = 0.0
        for t in range(len(d) - 1, -1, -1):
            last = d[t] + c[t] * last
            out[t] = last
        adv[:, 0] = out
        return adv
    last_row = np.zeros(delta.shape[1])
    for t in range(delta.shape[0] - 1, -1, -1):
        last_row = delta[t] + carry[t] * last_row
        adv[t] = last_row
    return adv
