"""Running statistics for observation normalization and reward scaling.

Both are shared by the target and behavior policies, and both keep *statistics only*: the buffer
stores raw data and re-normalizes it with the current statistics before every update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class RunningMeanStd:
    """Parallel-batch Welford estimate of mean and variance, in float64."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = epsilon

    def update(self, batch: np.ndarray) -> None:
        n = batch.shape[0]
        total = self.count + n
        if n == 1:
            # the same formula with batch_var = 0; skipping mean()/var() matters at one call per env step
            delta = batch[0] - self.mean
            m2 = self.var * self.count + delta * delta * (self.count / total)
        else:
            delta = batch.mean(axis=0) - self.mean
            m2 = self.var * self.count + batch.var(axis=0) * n + delta * delta * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": torch.from_numpy(np.array(self.mean, dtype=np.float64)),
            "var": torch.from_numpy(np.array(self.var, dtype=np.float64)),
            "count": float(self.count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].numpy().astype(np.float64).copy()
        self.var = state["var"].numpy().astype(np.float64).copy()
        self.count = float(state["count"])


class ObsNormalizer:
    """(obs - mean) / std, clipped to +-clip; a no-op when disabled."""

    def __init__(self, shape: tuple[int, ...], enabled: bool = True, clip: float = 10.0) -> None:
        self.rms = RunningMeanStd(shape)
        self.enabled = enabled
        self.clip = clip
        self.eps = 1e-8

    def update(self, obs: np.ndarray) -> None:
        if self.enabled:
            self.rms.update(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return obs
        out: np.ndarray = np.clip((obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rms": self.rms.state_dict(), "enabled": self.enabled, "clip": self.clip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rms.load_state_dict(state["rms"])
        self.enabled = bool(state["enabled"])
        self.clip = float(state["clip"])


class RewardScaler:
    """Divide rewards by the running std of the discounted return (as in PPO's reference code)."""

    def __init__(self, num_envs: int, gamma: float, enabled: bool = True, clip: float = 10.0) -> None:
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs)
        self.gamma = gamma
        self.enabled = enabled
        self.clip = clip
        self.eps = 1e-8

    def update(self, rewards: np.ndarray, done: np.ndarray) -> None:
        if not self.enabled:
            return
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns)
        self.returns[done] = 0.0

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return rewards
        out: np.ndarray = np.clip(rewards / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rms": self.rms.state_dict(), "returns": torch.from_numpy(self.returns.copy()), "enabled": self.enabled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rms.load_state_dict(state["rms"])
        self.returns = state["returns"].numpy().astype(np.float64).copy()
        self.enabled = bool(state["enabled"])
