"""Small toy environments from the paper.

* :class:`Discrete2D100Env` -- reach a goal on the plane with 100 discrete headings.
* :class:`TwoStepEnv` -- a two-step MDP whose greedy first step is a trap.

Both are registered with Gymnasium by :func:`hybridpg.envs.registry.register_envs`.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from hybridpg.errors import ConfigError

__all__ = ["Discrete2D100Env", "TwoStepEnv"]

Obs = NDArray[np.float32]


def _check_discrete_action(space: spaces.Space[Any], action: Any) -> int:
    """Return ``action`` as an int, or raise if the action space does not contain it."""
    if not space.contains(action):
        raise ValueError(f"invalid action {action!r} for {space}")
    return int(action)


class Discrete2D100Env(gym.Env[Obs, np.int64]):
    """Move a point towards a goal in ``[-1, 1]^2`` using one of ``n_actions`` headings.

    Observation: ``(x, y, goal_x, goal_y)`` as float32. Action ``k`` moves the agent ``step_size``
    in direction ``2*pi*k/(n_actions-1)``; the position is clipped to the square. The divisor is
    ``n_actions - 1`` as in the paper, so with the defaults actions 0 and 99 share heading 0.
    Reward is minus the distance to the goal after the move; the episode terminates once that
    distance is below ``goal_radius``. The 50-step time limit comes from the registration
    (``max_episode_steps=50``), which makes it a truncation.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, n_actions: int = 100, step_size: float = 0.05, goal_radius: float = 0.05) -> None:
        if n_actions < 2:
            raise ConfigError(f"n_actions must be at least 2, got {n_actions}")
        if step_size <= 0.0:
            raise ConfigError(f"step_size must be positive, got {step_size}")
        if goal_radius <= 0.0:
            raise ConfigError(f"goal_radius must be positive, got {goal_radius}")
        self.n_actions = n_actions
        self.step_size = step_size
        self.goal_radius = goal_radius
        angles = 2.0 * math.pi * np.arange(n_actions) / (n_actions - 1)
        self._moves: NDArray[np.float64] = step_size * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Discrete(n_actions)
        # Positions are kept in float64 so that repeated small moves do not accumulate float32 error.
        self._pos: NDArray[np.float64] = np.zeros(2)
        self._goal: NDArray[np.float64] = np.zeros(2)

    @property
    def position(self) -> NDArray[np.float64]:
        """The agent's current position (a copy)."""
        return self._pos.copy()

    @property
    def goal(self) -> NDArray[np.float64]:
        """The current goal (a copy)."""
        return self._goal.copy()

    def _obs(self) -> Obs:
        return np.concatenate([self._pos, self._goal]).astype(np.float32)

    def _distance(self) -> float:
        return float(np.linalg.norm(self._pos - self._goal))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start a new episode.

        ``options`` may set ``"position"`` and/or ``"goal"`` (points in ``[-1, 1]^2``, taken as
        given) instead of sampling them, e.g. to script a test case.
        """
        super().reset(seed=seed)
        options = options or {}
        self._pos = self._option_point(options, "position")
        self._goal = self._option_point(options, "goal")
        # Resample a goal that starts inside the goal radius: such an episode would be solved
        # before the agent acts, and reset cannot report termination.
        while "goal" not in options and self._distance() < self.goal_radius:
            self._goal = self.np_random.uniform(-1.0, 1.0, size=2)
        return self._obs(), {"distance": self._distance()}

    def _option_point(self, options: dict[str, Any], key: str) -> NDArray[np.float64]:
        if key not in options:
            return self.np_random.uniform(-1.0, 1.0, size=2)
        point = np.asarray(options[key], dtype=np.float64)
        if point.shape != (2,) or not np.all(np.abs(point) <= 1.0):
            raise ValueError(f"options[{key!r}] must be a point in [-1, 1]^2, got {options[key]!r}")
        return point.copy()

    def step(self, action: np.int64 | int) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        k = _check_discrete_action(self.action_space, action)
        self._pos = np.clip(self._pos + self._moves[k], -1.0, 1.0)
        distance = self._distance()
        terminated = distance < self.goal_radius
        return self._obs(), -distance, terminated, False, {"distance": distance}


class TwoStepEnv(gym.Env[Obs, np.int64]):
    """Two-step MDP with a one-hot observation of three states.

    From ``s0`` action 0 leads to ``s1`` and action 1 to ``s2``, both with reward 0. In ``s1``
    action 0 pays 2 and action 1 pays 0.5; in ``s2`` every action pays 1. The episode terminates
    after the second step, so the four returns are 2, 0.5, 1 and 1. The observation after the
    final step is all zeros: the episode has left the three states and nothing should be
    bootstrapped from it. ``info["state"]`` is the state index after the step (-1 once ended).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    N_STATES = 3
    # Reward for (state, action) in the second step; s0 is not in the table as it always pays 0.
    _FINAL_REWARD: dict[tuple[int, int], float] = {(1, 0): 2.0, (1, 1): 0.5, (2, 0): 1.0, (2, 1): 1.0}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(low=0.0, high=1.0, shape=(self.N_STATES,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._state: int | None = None

    @property
    def state(self) -> int | None:
        """Current state index (0, 1 or 2), or ``None`` once the episode has ended."""
        return self._state

    def _obs(self) -> Obs:
        obs = np.zeros(self.N_STATES, dtype=np.float32)
        if self._state is not None:
            obs[self._state] = 1.0
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._state = 0
        return self._obs(), {"state": 0}

    def step(self, action: np.int64 | int) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        a = _check_discrete_action(self.action_space, action)
        if self._state is None:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        if self._state == 0:
            self._state = 1 if a == 0 else 2
            return self._obs(), 0.0, False, False, {"state": self._state}
        reward = self._FINAL_REWARD[(self._state, a)]
        self._state = None
        return self._obs(), reward, True, False, {"state": -1}
