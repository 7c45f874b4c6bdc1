"""Rich-observation combination lock from the HNPG paper, with discrete and continuous actions.

The lock has ``horizon`` steps. At every step the latent state is one of two good states, A and
B, or the absorbing dead state C. Each good state has a secret code per step (one of 10 actions):
entering it keeps the agent in a good state (A or B with probability 1/2 each), any other action
moves it to C. Only the right code at the last step pays reward 1. A distractor makes the
reward anti-shaped: every good -> C transition pays 0.1 with probability 1/2.

The agent sees neither the latent state nor the step directly: with ``d = 2**ceil(log2(H + 4))``,
the observation is ``hadamard(d) @ z`` where ``z`` holds one-hot encodings of the latent state
(indices 0..2) and of the step (index ``3 + h``) plus N(0, noise_std^2) noise on ``z[0:H+3]``.

The codes are drawn once, from ``code_seed``, when the env is constructed: the lock is a fixed
MDP, so offline data and an online agent built with the same kwargs face the same lock whatever
seeds they reset with. The reset seed only drives the start state, the A/B transitions, the
distractor, the observation noise and (continuous variant) the sampled latent action.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from scipy.linalg import hadamard

from hybridpg.errors import ConfigError

__all__ = [
    "LATENT_A",
    "LATENT_B",
    "LATENT_C",
    "N_CODES",
    "CombinationLockContinuousEnv",
    "CombinationLockEnv",
    "LockOptimalPolicy",
    "lock_observation_dim",
]

Obs = NDArray[np.float32]
ActT = TypeVar("ActT")

LATENT_A = 0
LATENT_B = 1
LATENT_C = 2
_N_LATENT = 3
N_CODES = 10
DISTRACTOR_REWARD = 0.1
DISTRACTOR_PROB = 0.5


def lock_observation_dim(horizon: int) -> int:
    """Observation size ``2**ceil(log2(horizon + 4))`` for a lock of the given horizon."""
    return 2 ** math.ceil(math.log2(horizon + 4))


class _CombinationLockBase(gym.Env[Obs, ActT]):
    """Dynamics, rewards and observations shared by both action variants.

    ``info`` holds ``latent`` (0=A, 1=B, 2=C) and ``h`` after the step, ``optimal_reward`` (this
    step paid the reward 1 of the last step's right code) and ``distractor`` (this step paid the
    0.1 distractor).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, horizon: int = 5, noise_std: float = 0.1, code_seed: int = 0) -> None:
        if horizon < 1:
            raise ConfigError(f"horizon must be at least 1, got {horizon}")
        if noise_std < 0.0:
            raise ConfigError(f"noise_std must be non-negative, got {noise_std}")
        self.horizon = horizon
        self.noise_std = noise_std
        self.code_seed = code_seed
        self.obs_dim = lock_observation_dim(horizon)
        code_rng = np.random.default_rng(code_seed)
        # Row LATENT_A holds opt_a[h], row LATENT_B holds opt_b[h].
        self._codes: NDArray[np.int64] = code_rng.integers(0, N_CODES, size=(2, horizon))
        self._hadamard: NDArray[np.float64] = np.asarray(hadamard(self.obs_dim), dtype=np.float64)
        # The noise is unbounded, so the observation space is too.
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.obs_dim,), dtype=np.float32)
        self._latent = LATENT_A
        self._h = 0

    @property
    def opt_a(self) -> NDArray[np.int64]:
        """Right code per step in state A (a copy)."""
        return self._codes[LATENT_A].copy()

    @property
    def opt_b(self) -> NDArray[np.int64]:
        """Right code per step in state B (a copy)."""
        return self._codes[LATENT_B].copy()

    @property
    def latent(self) -> int:
        """Current latent state: 0 (A), 1 (B) or 2 (C)."""
        return self._latent

    @property
    def h(self) -> int:
        """Number of steps taken in this episode (``horizon`` once it has ended)."""
        return self._h

    def right_code(self, latent: int, h: int) -> int | None:
        """The code that keeps ``latent`` good at step ``h``, or ``None`` in the dead state."""
        if latent == LATENT_C:
            return None
        return int(self._codes[latent, h])

    def observation_from_latent(self, latent: int, h: int, noise: NDArray[np.float64] | None = None) -> Obs:
        """The observation for ``(latent, h)``; ``noise`` (length ``horizon + 3``) defaults to none."""
        z = np.zeros(self.obs_dim)
        if noise is not None:
            z[: self.horizon + 3] = noise
        z[latent] += 1.0
        z[3 + h] += 1.0
        return (self._hadamard @ z).astype(np.float32)

    def decode_observation(self, obs: NDArray[Any]) -> tuple[int, int]:
        """Recover ``(latent, h)`` from an observation.

        The Sylvester Hadamard matrix is symmetric with ``H @ H.T = d * I``, so ``H.T @ obs / d``
        gives back ``z``; the argmaxes then undo the noise as long as it is well below 1/2.
        """
        z = self._hadamard.T @ np.asarray(obs, dtype=np.float64) / self.obs_dim
        latent = int(np.argmax(z[:_N_LATENT]))
        # Index 3 + horizon is the terminal observation's step, so it is part of the search.
        h = int(np.argmax(z[3 : 4 + self.horizon]))
        return latent, h

    def _obs(self) -> Obs:
        noise = self.np_random.normal(0.0, self.noise_std, size=self.horizon + 3)
        return self.observation_from_latent(self._latent, self._h, noise)

    def _info(self, optimal_reward: bool, distractor: bool) -> dict[str, Any]:
        return {
            "latent": self._latent,
            "h": self._h,
            "optimal_reward": optimal_reward,
            "distractor": distractor,
        }

    @abstractmethod
    def _code_from_action(self, action: ActT) -> tuple[int, dict[str, Any]]:
        """Map the agent's action to a latent code, plus extra info entries."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start a new episode in A or B with probability 1/2 each.

        ``options={"latent": k}`` starts in latent state ``k`` (0, 1 or 2) instead, e.g. to script
        a test case.
        """
        super().reset(seed=seed)
        self._h = 0
        self._latent = LATENT_A if self.np_random.random() < 0.5 else LATENT_B
        if options is not None and "latent" in options:
            latent = options["latent"]
            if latent not in (LATENT_A, LATENT_B, LATENT_C):
                raise ValueError(f"options['latent'] must be 0, 1 or 2, got {latent!r}")
            self._latent = int(latent)
        return self._obs(), self._info(optimal_reward=False, distractor=False)

    def step(self, action: ActT) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        if self._h >= self.horizon:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        code, extra_info = self._code_from_action(action)
        reward = 0.0
        optimal = False
        distractor = False
        if self._latent != LATENT_C and code == self._codes[self._latent, self._h]:
            if self._h == self.horizon - 1:
                reward = 1.0
                optimal = True
            self._latent = LATENT_A if self.np_random.random() < 0.5 else LATENT_B
        else:
            # Good -> C pays the distractor w.p. 1/2 (the paper's rule); C -> C never pays.
            if self._latent != LATENT_C and self.np_random.random() < DISTRACTOR_PROB:
                reward = DISTRACTOR_REWARD
                distractor = True
            self._latent = LATENT_C
        self._h += 1
        terminated = self._h == self.horizon
        info = self._info(optimal_reward=optimal, distractor=distractor)
        info.update(extra_info)
        return self._obs(), reward, terminated, False, info


class CombinationLockEnv(_CombinationLockBase[np.int64 | int]):
    """Combination lock with ``Discrete(10)`` actions: the action is the code itself.

    Args:
        horizon: number of steps H; every episode lasts exactly H steps.
        noise_std: standard deviation of the Gaussian noise on ``z[0:H+3]``.
        code_seed: seed of the secret codes, fixed for the env's lifetime.
    """

    def __init__(self, horizon: int = 5, noise_std: float = 0.1, code_seed: int = 0) -> None:
        super().__init__(horizon=horizon, noise_std=noise_std, code_seed=code_seed)
        self.action_space = spaces.Discrete(N_CODES)

    def _code_from_action(self, action: np.int64 | int) -> tuple[int, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        return int(action), {}


class CombinationLockContinuousEnv(_CombinationLockBase[NDArray[np.float32]]):
    """Combination lock with ``Box([-b, b]^10)`` actions.

    The env clips the action ``a`` to the box and samples the latent code from
    ``softmax(a / temperature)`` with its own RNG; ``info["latent_action"]`` reports the code.

    Args:
        horizon: number of steps H; every episode lasts exactly H steps.
        noise_std: standard deviation of the Gaussian noise on ``z[0:H+3]``.
        temperature: softmax temperature; at 0.1 with ``b = 1`` a logit gap of 2 means e^20 odds.
        code_seed: seed of the secret codes, fixed for the env's lifetime.
        action_bound: ``b``; the default of 1 gives the normalized box continuous agents expect.
    """

    def __init__(
        self,
        horizon: int = 5,
        noise_std: float = 0.1,
        temperature: float = 0.1,
        code_seed: int = 0,
        action_bound: float = 1.0,
    ) -> None:
        super().__init__(horizon=horizon, noise_std=noise_std, code_seed=code_seed)
        if temperature <= 0.0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        if action_bound <= 0.0:
            raise ConfigError(f"action_bound must be positive, got {action_bound}")
        self.temperature = temperature
        self.action_bound = action_bound
        self.action_space = spaces.Box(-action_bound, action_bound, shape=(N_CODES,), dtype=np.float32)

    def code_probabilities(self, action: NDArray[Any]) -> NDArray[np.float64]:
        """The distribution ``softmax(clip(action) / temperature)`` the latent code is drawn from."""
        a = np.clip(np.asarray(action, dtype=np.float64), -self.action_bound, self.action_bound)
        logits = a / self.temperature
        # Subtracting the max keeps exp() finite for small temperatures.
        weights = np.exp(logits - logits.max())
        return np.asarray(weights / weights.sum(), dtype=np.float64)

    def _code_from_action(self, action: NDArray[np.float32]) -> tuple[int, dict[str, Any]]:
        a = np.asarray(action)
        if a.shape != (N_CODES,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be a finite vector of shape ({N_CODES},), got {action!r}")
        # Actions outside the box (e.g. from an unsquashed Gaussian) are clipped rather than
        # rejected, so the temperature keeps its meaning relative to the box.
        code = int(self.np_random.choice(N_CODES, p=self.code_probabilities(a)))
        return code, {"latent_action": code}


class LockOptimalPolicy:
    """Scripted optimal policy for either lock variant, acting from observations only.

    It decodes ``(latent, h)`` from the observation and plays the right code: the code index for
    the discrete lock, or a vector at ``+bound`` on the code and ``-bound`` elsewhere for the
    continuous one. With probability ``epsilon`` it plays a uniformly random action instead
    (uniform over the box for the continuous lock). In the dead state every action is
    equivalent, and it plays code 0.
    """

    def __init__(self, env: gym.Env[Any, Any], epsilon: float = 0.0, seed: int | None = None) -> None:
        lock = env.unwrapped
        if not isinstance(lock, _CombinationLockBase):
            raise TypeError(f"LockOptimalPolicy needs a combination lock env, got {type(lock).__name__}")
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        self.lock: _CombinationLockBase[Any] = lock
        self.epsilon = epsilon
        self._rng = np.random.default_rng(seed)

    def code(self, obs: NDArray[Any]) -> int:
        """The right code for the state encoded in ``obs`` (0 in the dead state)."""
        latent, h = self.lock.decode_observation(obs)
        # A terminal observation decodes to h == horizon; no action is taken there anyway.
        right = self.lock.right_code(latent, min(h, self.lock.horizon - 1))
        return 0 if right is None else right

    def __call__(self, obs: NDArray[Any]) -> np.int64 | NDArray[np.float32]:
        explore = self.epsilon > 0.0 and self._rng.random() < self.epsilon
        if isinstance(self.lock, CombinationLockContinuousEnv):
            bound = self.lock.action_bound
            if explore:
                return self._rng.uniform(-bound, bound, size=N_CODES).astype(np.float32)
            action = np.full(N_CODES, -bound, dtype=np.float32)
            action[self.code(obs)] = bound
            return action
        if explore:
            return np.int64(self._rng.integers(N_CODES))
        return np.int64(self.code(obs))
