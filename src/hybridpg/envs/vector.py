"""Environment construction and a lean vector env with same-step autoreset.

Why our own sync vector env: with one or a few envs, gymnasium's SyncVectorEnv costs a noticeable
share of each step, and its default NEXT_STEP autoreset inserts a dummy transition. Ours steps
the envs, resets finished ones in the same call and hands back the *true* final observation,
which truncation bootstrapping needs. ``async_envs=True`` uses gymnasium's AsyncVectorEnv in
SAME_STEP mode behind the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from hybridpg.errors import EnvError, NonFiniteError

EnvSpec = str | gym.Env | Callable[[], gym.Env]


def _ensure_registered() -> None:
    try:
        from hybridpg.envs.registry import register_envs
    except ImportError:  # toy envs are optional at import time
        return
    register_envs()


def make_env_fn(env: EnvSpec, **kwargs: Any) -> Callable[[], gym.Env]:
    """A picklable-enough factory for one env; validates the id eagerly with a clear error."""
    if isinstance(env, gym.Env):
        instance = env
        return lambda: instance
    if callable(env):
        return env
    if not isinstance(env, str):
        raise EnvError(f"env must be a Gymnasium id, an Env instance or a factory, got {type(env).__name__}")
    env_id = env
    _ensure_registered()
    try:
        gym.spec(env_id)
    except Exception as exc:  # gymnasium raises several error types for bad ids
        raise EnvError(f"unknown environment id '{env_id}': {str(exc).splitlines()[0]}") from None

    def factory() -> gym.Env:
        try:
            return gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise EnvError(f"environment '{env_id}' needs an extra package: {exc}") from None

    return factory


def env_name(env: EnvSpec) -> str:
    if isinstance(env, str):
        return env
    if isinstance(env, gym.Env) and env.spec is not None:
        return env.spec.id
    return type(env).__name__


@dataclass
class StepResult:
    obs: np.ndarray  # next observations, already reset where an episode ended
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray  # the true last observation where done, else equal to obs
    finished_returns: list[float]
    finished_lengths: list[int]


class VecEnv:
    """``num_envs`` copies of one env, stepped in lockstep, autoreset in the same step."""

    def __init__(self, env: EnvSpec, num_envs: int = 1, async_envs: bool = False, seed: int = 0) -> None:
        if isinstance(env, gym.Env) and num_envs > 1:
            raise EnvError("an Env instance can only back num_envs=1; pass an id or a factory for more")
        factory = make_env_fn(env)
        self.num_envs = num_envs
        self.async_envs = async_envs
        self._async: gym.vector.AsyncVectorEnv | None = None
        self.envs: list[gym.Env] = []
        if async_envs:
            self._async = gym.vector.AsyncVectorEnv(
                [factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
            )
            self.single_observation_space = self._async.single_observation_space
            self.single_action_space = self._async.single_action_space
        else:
            self.envs = [factory() for _ in range(num_envs)]
            self.single_observation_space = self.envs[0].observation_space
            self.single_action_space = self.envs[0].action_space
        if not isinstance(self.single_observation_space, gym.spaces.Box):
            space = self.single_observation_space
            raise EnvError(f"only Box observation spaces are supported, got {space}")
        self.obs_shape: tuple[int, ...] = tuple(self.single_observation_space.shape)
        self.episode_returns = np.zeros(num_envs)
        self.episode_lengths = np.zeros(num_envs, dtype=np.int64)
        self.total_steps = 0
        self.seed = seed
        self.obs = self.reset(seed)

    # -- stepping -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        if self._async is not None:
            obs, _ = self._async.reset(seed=seed)
            self._async.action_space.seed(seed)
            out = np.asarray(obs, dtype=np.float64)
        else:
            rows = []
            for i, env in enumerate(self.envs):
                s = None if seed is None else seed + i
                o, _ = env.reset(seed=s)
                env.action_space.seed(s)
                rows.append(o)
            out = np.asarray(rows, dtype=np.float64)
        self.episode_returns[:] = 0
        self.episode_lengths[:] = 0
        self._check_finite(out, "observation")
        self.obs = out
        return out

    def step(self, actions: np.ndarray) -> StepResult:
        if self._async is not None:
            result = self._step_async(actions)
        else:
            result = self._step_sync(actions)
        self._check_finite(result.obs, "observation")
        self._check_finite(result.rewards, "reward")
        self.total_steps += self.num_envs
        self.obs = result.obs
        return result

    def _step_sync(self, actions: np.ndarray) -> StepResult:
        n = self.num_envs
        obs = np.empty((n, *self.obs_shape))
        rewards = np.empty(n)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        final_obs = obs  # aliased until an episode ends, to avoid a copy per step
        done_rows: list[tuple[int, Any]] = []
        for i, env in enumerate(self.envs):
            o, r, te, tr, _ = env.step(actions[i])
            rewards[i] = r
            term[i] = te
            trunc[i] = tr
            if te or tr:
                done_rows.append((i, o))
                o, _ = env.reset()
            obs[i] = o
        if done_rows:
            final_obs = obs.copy()
            for i, o in done_rows:
                final_obs[i] = o
        return self._bookkeep(obs, rewards, term, trunc, final_obs)

    def _step_async(self, actions: np.ndarray) -> StepResult:
        assert self._async is not None
        obs, rewards, term, trunc, info = self._async.step(actions)
        obs = np.asarray(obs, dtype=np.float64)
        final_obs = obs
        if "final_obs" in info:
            final_obs = obs.copy()
            mask = info.get("_final_obs", np.zeros(self.num_envs, dtype=bool))
            for i in np.flatnonzero(mask):
                final_obs[i] = info["final_obs"][i]
        return self._bookkeep(
            obs, np.asarray(rewards, dtype=np.float64), np.asarray(term), np.asarray(trunc), final_obs
        )

    def _bookkeep(
        self, obs: np.ndarray, rewards: np.ndarray, term: np.ndarray, trunc: np.ndarray, final_obs: np.ndarray
    ) -> StepResult:
        self.episode_returns += rewards
        self.episode_lengths += 1
        finished_r: list[float] = []
        finished_l: list[int] = []
        done = term | trunc
        if done.any():
            self._check_finite(final_obs, "final observation")
            for i in np.flatnonzero(done):
                finished_r.append(float(self.episode_returns[i]))
                finished_l.append(int(self.episode_lengths[i]))
                self.episode_returns[i] = 0.0
                self.episode_lengths[i] = 0
        return StepResult(obs, rewards, term, trunc, final_obs, finished_r, finished_l)

    def _check_finite(self, values: np.ndarray, what: str) -> None:
        if not np.isfinite(values).all():
            raise NonFiniteError(
                f"the environment returned a non-finite {what} at env step {self.total_steps}; "
                "the run was stopped, its last checkpoint is intact"
            )

    def clip_actions(self, actions: np.ndarray) -> np.ndarray:
        space = self.single_action_space
        if isinstance(space, gym.spaces.Box):
            return np.clip(actions, space.low, space.high)
        return actions

    def close(self) -> None:
        if self._async is not None:
            self._async.close()
        for env in self.envs:
            env.close()

    # -- state (for exact resume of the env side where the env supports it) ------------------------
    def rng_states(self) -> list[Any]:
        return [env.unwrapped.np_random.bit_generator.state for env in self.envs]

    def set_rng_states(self, states: Sequence[Any]) -> None:
        for env, state in zip(self.envs, states, strict=False):
            env.unwrapped.np_random.bit_generator.state = state
