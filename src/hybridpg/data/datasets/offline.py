"""The in-memory offline dataset: flat float32 arrays plus episode boundaries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from hybridpg.data.datasets.common import FloatArray, IntArray, _error
from hybridpg.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, eq=False)
class EpisodeSlice:
    """The transitions of one episode inside an :class:`OfflineDataset` (views, not copies)."""

    index: int
    observations: FloatArray
    actions: FloatArray
    rewards: FloatArray
    next_observations: FloatArray
    terminations: FloatArray
    truncations: FloatArray

    def __len__(self) -> int:
        return int(len(self.rewards))

    @property
    def final_observation(self) -> FloatArray | None:
        """The observation after the last step (None for an empty episode)."""
        return self.next_observations[-1] if len(self) else None


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """A Minari dataset as flat arrays over all ``N`` transitions, episode after episode.

    ``observations``/``next_observations``: float32 ``(N, *obs_shape)`` (Discrete observations as
    ``(N,)``); ``actions``: float32 ``(N, *act_shape)`` (Discrete actions as ``(N,)`` of whole
    numbers, use ``.astype(np.int64)``); ``rewards``, ``terminations``, ``truncations``: float32
    ``(N,)`` with 0/1 flags; ``episode_ids``: int64 ``(N,)``, the episode of each transition;
    ``episode_offsets``: int64 ``(n_episodes + 1,)``, episode ``i`` is
    ``slice(episode_offsets[i], episode_offsets[i + 1])``. ``next_observations`` never crosses an
    episode boundary: an episode's last row is its own final observation.
    """

    observations: FloatArray
    actions: FloatArray
    rewards: FloatArray
    next_observations: FloatArray
    terminations: FloatArray
    truncations: FloatArray
    episode_ids: IntArray
    episode_offsets: IntArray
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    dataset_id: str | None = None
    data_path: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.rewards)
        for name in ("observations", "actions", "next_observations", "terminations", "truncations"):
            if len(getattr(self, name)) != n:
                raise _error(f"OfflineDataset: {name} has {len(getattr(self, name))} rows, rewards has {n}")
        offsets = self.episode_offsets
        if (
            offsets.ndim != 1
            or len(offsets) < 1
            or offsets[0] != 0
            or offsets[-1] != n
            or np.any(np.diff(offsets) < 0)
        ):
            raise _error("OfflineDataset: episode_offsets must rise from 0 to the number of transitions")
        if len(self.episode_ids) != n:
            raise _error(f"OfflineDataset: episode_ids has {len(self.episode_ids)} rows, rewards has {n}")

    @property
    def n_transitions(self) -> int:
        return int(len(self.rewards))

    @property
    def n_episodes(self) -> int:
        return int(len(self.episode_offsets) - 1)

    @property
    def episode_lengths(self) -> IntArray:
        return np.diff(self.episode_offsets).astype(np.int64)

    @property
    def episode_starts(self) -> npt.NDArray[np.bool_]:
        """``(N,)`` bool, True at the first transition of each episode."""
        starts = np.zeros(self.n_transitions, dtype=bool)
        firsts = self.episode_offsets[:-1][self.episode_lengths > 0]
        starts[firsts] = True
        return starts

    @property
    def dones(self) -> FloatArray:
        """``(N,)`` float32, 1 where the episode ended (terminated or truncated)."""
        return np.maximum(self.terminations, self.truncations)

    def episode(self, index: int) -> EpisodeSlice:
        """Episode ``index`` (negative indices count from the end)."""
        if not -self.n_episodes <= index < self.n_episodes:
            raise IndexError(f"episode {index} out of range for {self.n_episodes} episodes")
        index %= self.n_episodes
        part = slice(int(self.episode_offsets[index]), int(self.episode_offsets[index + 1]))
        return EpisodeSlice(
            index=index,
            observations=self.observations[part],
            actions=self.actions[part],
            rewards=self.rewards[part],
            next_observations=self.next_observations[part],
            terminations=self.terminations[part],
            truncations=self.truncations[part],
        )

    def episodes(self) -> Iterator[EpisodeSlice]:
        for index in range(self.n_episodes):
            yield self.episode(index)

    def episode_returns(self) -> npt.NDArray[np.float64]:
        """Undiscounted return of each episode, ``(n_episodes,)``."""
        weights = self.rewards.astype(np.float64)
        return np.bincount(self.episode_ids, weights=weights, minlength=self.n_episodes).astype(np.float64)

    def mc_returns(self, gamma: float) -> FloatArray:
        """Discounted return-to-go ``G_t = r_t + gamma * G_{t+1}`` of each transition, ``(N,)``.

        Computed within each episode, from the episode's last recorded step (so returns of truncated
        episodes are not bootstrapped beyond the truncation).
        """
        if not 0.0 <= float(gamma) <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {gamma!r}")
        out = np.zeros(self.n_transitions, dtype=np.float64)
        rewards = self.rewards.astype(np.float64)
        for start, end in zip(self.episode_offsets[:-1], self.episode_offsets[1:], strict=True):
            if end > start:
                reversed_rewards = rewards[start:end][::-1]
                out[start:end] = np.asarray(_lfilter()([1.0], [1.0, -float(gamma)], reversed_rewards))[::-1]
        return out.astype(np.float32)




def _lfilter() -> Any:
    # scipy.signal costs ~0.5 s and tens of MB at import; only MC returns need it
    from scipy.signal import lfilter

    return lfilter
