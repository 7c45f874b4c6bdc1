"""Recording raw episodes from a policy in one Gymnasium env."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from minari.data_collector import EpisodeBuffer

from hybridpg.data.datasets.common import _require_supported
from hybridpg.errors import ConfigError, EnvError, NonFiniteError

# --------------------------------------------------------------------------------------------
# Collecting


@dataclass(frozen=True, eq=False)
class EpisodeRecord:
    """One raw episode with ``T`` steps, as written to a Minari dataset.

    ``observations`` has ``T + 1`` rows (the reset observation, then one per step, so the final
    observation is included); ``actions``, ``rewards``, ``terminations`` and ``truncations`` have
    ``T`` rows. ``seed`` is the seed passed to ``env.reset`` (stored by Minari per episode).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None

    def __len__(self) -> int:
        return int(len(self.rewards))

    def to_minari_buffer(self) -> Any:
        """This episode as a ``minari.data_collector.EpisodeBuffer``."""
        return EpisodeBuffer(
            seed=self.seed,
            observations=self.observations,
            actions=self.actions,
            rewards=self.rewards,
            terminations=self.terminations,
            truncations=self.truncations,
        )


def _env_action(raw: np.ndarray | int, space: gym.Space[Any], shape: tuple[int, ...]) -> Any:
    array = np.asarray(raw)
    if isinstance(space, spaces.Discrete):
        value = array.reshape(()) if array.size == 1 else None
        if value is None or not np.issubdtype(value.dtype, np.number) or value != np.round(value):
            raise EnvError(f"policy returned {raw!r}; a Discrete action space needs one integer")
        return int(value)
    if array.size != int(np.prod(shape)):
        raise EnvError(f"policy returned an action of shape {array.shape}; the action space needs {shape}")
    dtype = space.dtype if space.dtype is not None else np.float32
    return array.astype(dtype, copy=False).reshape(shape)


def _check_finite(value: Any, what: str, episode: int, step: int) -> None:
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise NonFiniteError(f"environment returned a non-finite {what} in episode {episode} at step {step}")


def collect_episodes(
    env: gym.Env[Any, Any],
    policy: Callable[[np.ndarray], np.ndarray | int],
    n_episodes: int,
    seed: int,
    *,
    max_episode_steps: int | None = None,
) -> list[EpisodeRecord]:
    """Roll ``policy`` out in a single env for ``n_episodes`` episodes and record them raw.

    Episode ``i`` starts with ``env.reset(seed=seed + i)`` so each one is reproducible on its own;
    ``env.action_space`` is seeded with ``seed`` too (for policies that sample from it). The policy
    gets the raw observation as an array and returns an action (an ``int`` for Discrete actions).
    ``max_episode_steps`` cuts episodes of envs without a time limit (the cut step is recorded as a
    truncation). Raises ``EnvError`` for a vector env or a wrongly shaped action, ``NonFiniteError``
    for NaN/inf from the env.
    """
    if isinstance(env, gym.vector.VectorEnv) or not isinstance(env, gym.Env):
        raise EnvError(f"collect_episodes needs a single gymnasium.Env, got {type(env).__name__}")
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be positive or None, got {max_episode_steps!r}")
    where = f"env {env.spec.id if env.spec is not None else type(env).__name__}"
    obs_space, act_space = env.observation_space, env.action_space
    obs_shape = _require_supported(obs_space, "observation", where)
    act_shape = _require_supported(act_space, "action", where)
    obs_dtype = obs_space.dtype if obs_space.dtype is not None else np.float32
    act_dtype = act_space.dtype if act_space.dtype is not None else np.float32

    act_space.seed(seed)
    episodes: list[EpisodeRecord] = []
    for index in range(n_episodes):
        episode_seed = seed + index
        obs, _ = env.reset(seed=episode_seed)
        _check_finite(obs, "observation", index, 0)
        observations: list[np.ndarray] = [np.asarray(obs)]
        actions: list[Any] = []
        rewards: list[float] = []
        terminations: list[bool] = []
        truncations: list[bool] = []
        while True:
            action = _env_action(policy(np.asarray(obs)), act_space, act_shape)
            obs, reward, terminated, truncated, _ = env.step(action)
            step = len(rewards) + 1
            _check_finite(obs, "observation", index, step)
            _check_finite(reward, "reward", index, step)
            if max_episode_steps is not None and step >= max_episode_steps:
                truncated = True
            observations.append(np.asarray(obs))
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated) and not bool(terminated))
            if terminated or truncated:
                break
        episodes.append(
            EpisodeRecord(
                observations=np.asarray(observations, dtype=obs_dtype).reshape(-1, *obs_shape),
                actions=np.asarray(actions, dtype=act_dtype).reshape(-1, *act_shape),
                rewards=np.asarray(rewards, dtype=np.float64),
                terminations=np.asarray(terminations, dtype=bool),
                truncations=np.asarray(truncations, dtype=bool),
                seed=episode_seed,
            )
        )
    return episodes
