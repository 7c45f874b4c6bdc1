"""A lean vector env with same-step autoreset.

Why our own sync vector env: with one or a few envs, gymnasium's SyncVectorEnv costs a noticeable
share of each step, and its default NEXT_STEP autoreset inserts a dummy transition. Ours steps
the envs, resets finished ones in the same call and hands back the *true* final observation,
which truncation bootstrapping needs. ``async_envs=True`` uses gymnasium's AsyncVectorEnv in
SAME_STEP mode behind the same interface.
"""

from __future__ import annotations

import contextlib
import os
import reprlib
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.async_vector_env import AsyncState

from hybridpg.envs.env_state import _seed_spaces, _StateAccess, capture_env_state, restore_env_state
from hybridpg.envs.making import (
    EnvSpec,
    _describe,
    _one_line,
    _WorkerFailure,
    env_failure,
    env_name,
    make_env_fn,
)
from hybridpg.errors import EnvError, HybridPGError, NonFiniteError

# construction lives in making.py; these names stay importable from here
__all__ = ["EnvSpec", "StepResult", "VecEnv", "env_failure", "env_name", "make_env_fn"]


_PLAIN_REWARDS = (float, int)  # a tuple: isinstance with one is cheaper than with float | int


class _QuietAsyncVectorEnv(gym.vector.AsyncVectorEnv):
    """AsyncVectorEnv that re-raises a worker's error without first logging its multi-line
    traceback as warnings: VecEnv reports it as one EnvError line."""

    def _raise_if_errors(self, successes: Iterable[bool]) -> None:
        successes = list(successes)
        if all(successes):
            return
        failures = []
        for _ in range(len(successes) - sum(successes)):
            index, exctype, value, _trace = self.error_queue.get()
            # as gymnasium does: the failed worker has exited, so its pipe is done
            self.parent_pipes[index].close()
            self.parent_pipes[index] = None  # type: ignore[call-overload]
            failures.append(f"{getattr(exctype, '__name__', exctype)}: {str(value).strip()}")
        self._state = AsyncState.DEFAULT
        raise _WorkerFailure(failures[-1])


def _worker_factory(factory: Callable[[], gym.Env], parent_pid: int) -> Callable[[], gym.Env]:
    """``factory`` wrapped for AsyncVectorEnv; it runs in each worker (and once in the parent)."""

    def build() -> gym.Env:
        if os.getpid() != parent_pid:
            # a terminal's Ctrl-C (and a scheduler's SIGTERM) reaches the whole process group: the
            # trainer must outlive it with its workers, to checkpoint (env state lives in them), then
            # close them; a worker still exits when its pipe to the trainer closes
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return _StateAccess(factory())

    return build


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

    def __init__(
        self,
        env: EnvSpec,
        num_envs: int = 1,
        async_envs: bool = False,
        seed: int = 0,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(env, gym.Env) and num_envs > 1:
            raise EnvError("an Env instance can only back num_envs=1; pass an id or a factory for more")
        factory = make_env_fn(env, **(env_kwargs or {}))
        self.num_envs = num_envs
        self.async_envs = async_envs
        self._env_spec, self._env_kwargs = env, dict(env_kwargs or {})
        self._describe = _describe(env, self._env_kwargs)
        self._async: gym.vector.AsyncVectorEnv | None = None
        self.envs: list[gym.Env] = []
        try:
            if async_envs:
                build = _worker_factory(factory, os.getpid())
                self._async = _QuietAsyncVectorEnv(
                    [build] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
                )
                self.single_observation_space = self._async.single_observation_space
                self.single_action_space = self._async.single_action_space
            else:
                for _ in range(num_envs):
                    self.envs.append(factory())
                self.single_observation_space = self.envs[0].observation_space
                self.single_action_space = self.envs[0].action_space
        except Exception as exc:
            self.close()
            if isinstance(exc, HybridPGError):
                raise
            raise EnvError(f"cannot build {self._describe}: {_one_line(exc)}") from exc
        if not isinstance(self.single_observation_space, gym.spaces.Box):
            self.close()
            space = self.single_observation_space
            raise EnvError(f"only Box observation spaces are supported, got {space}")
        self.obs_shape: tuple[int, ...] = tuple(self.single_observation_space.shape)
        self.episode_returns = np.zeros(num_envs)
        self.episode_lengths = np.zeros(num_envs, dtype=np.int64)
        self.total_steps = 0
        self.seed = seed
        try:
            self.obs = self.reset(seed)
        except BaseException:
            self.close()
            raise

    # -- stepping -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        try:
            if self._async is not None:
                obs, _ = self._async.reset(seed=seed)
                if seed is not None:  # each worker's spaces, as the sync path seeds them
                    self._async.set_attr("hybridpg_space_seed", [seed + i for i in range(self.num_envs)])
                self._async.action_space.seed(seed)
                out = np.asarray(obs, dtype=np.float64)
            else:
                rows = []
                for i, env in enumerate(self.envs):
                    s = None if seed is None else seed + i
                    o, _ = env.reset(seed=s)
                    _seed_spaces(env, s)
                    rows.append(self._checked_obs(o, "reset"))
                out = np.asarray(rows, dtype=np.float64)
        except HybridPGError:
            raise
        except Exception as exc:
            raise env_failure(self._env_spec, self._env_kwargs, "failed in reset", exc) from exc
        if out.shape != (self.num_envs, *self.obs_shape):
            raise EnvError(f"{self._describe}: reset returned observations of shape {out.shape[1:]}, "
                           f"its observation_space has shape {self.obs_shape}")
        self.episode_returns[:] = 0
        self.episode_lengths[:] = 0
        self._check_finite(out, "observation")
        self.obs = out
        return out

    def step(self, actions: np.ndarray) -> StepResult:
        try:
            if self._async is not None:
                result = self._step_async(actions)
            else:
                result = self._step_sync(actions)
        except HybridPGError:
            raise
        except Exception as exc:  # free when nothing is raised (Python 3.11+)
            what = f"failed in step at env step {self.total_steps}"
            raise env_failure(self._env_spec, self._env_kwargs, what, exc) from exc
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
        shape = self.obs_shape
        for i, env in enumerate(self.envs):
            o, r, te, tr, _ = env.step(actions[i])
            if getattr(o, "shape", None) != shape:  # an attribute read per step; lists take the slow check
                o = self._checked_obs(o, "step")
            if not isinstance(r, _PLAIN_REWARDS):  # most envs' rewards (np.float64 is a float) skip the check
                r = self._checked_reward(r)
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
        if np.shape(rewards) != (self.num_envs,):  # the workers' observations fit shared memory already
            raise EnvError(f"{self._describe}: step returned rewards of shape {np.shape(rewards)[1:]}, not scalars")
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

    def _checked_obs(self, obs: Any, what: str) -> Any:
        if np.shape(obs) != self.obs_shape:
            raise EnvError(f"{self._describe}: {what} returned an observation of shape {np.shape(obs)}, "
                           f"its observation_space has shape {self.obs_shape}")
        return obs

    def _checked_reward(self, reward: Any) -> float:
        try:
            if np.ndim(reward) != 0:
                raise TypeError
            return float(reward)
        except (TypeError, ValueError):
            raise EnvError(f"{self._describe}: step returned the reward {reprlib.repr(reward)}, "
                           "not a scalar number") from None

    def _check_finite(self, values: np.ndarray, what: str) -> None:
        if not np.isfinite(values).all():
            raise NonFiniteError(
                f"the environment returned a non-finite {what} at env step {self.total_steps}; "
                "the run was stopped, its last checkpoint is intact"
            )

    def clip_actions(self, actions: np.ndarray) -> np.ndarray:
        space = self.single_action_space
        if isinstance(space, gym.spaces.Box):
            # minimum/maximum: cheaper than np.clip's dispatch on tiny arrays, called every step
            return np.minimum(np.maximum(actions, space.low), space.high)
        return actions

    def close(self) -> None:
        if self._async is not None:
            try:
                self._async.close()
            except (OSError, EOFError, _WorkerFailure):  # BrokenPipe, ConnectionReset: a worker already died
                with contextlib.suppress(Exception):  # stop whatever is left, quietly
                    self._async.close(terminate=True)
                self._async.closed = True  # so its __del__ does not try (and print) again
        for env in self.envs:
            env.close()

    # -- state (for exact resume of the env side where the env supports it) ------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything that decides what the envs return next (see ``capture_env_state``)."""
        if self._async is not None:
            envs = list(self._async.get_attr("hybridpg_state"))
        else:
            envs = [capture_env_state(env) for env in self.envs]
        return {
            "obs": torch.from_numpy(self.obs.copy()),
            "episode_returns": torch.from_numpy(self.episode_returns.copy()),
            "episode_lengths": torch.from_numpy(self.episode_lengths.copy()),
            "total_steps": self.total_steps,
            "envs": envs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore the envs; returns whether the restore is known to be exact for these envs."""
        obs = state["obs"].numpy().astype(np.float64)
        if obs.shape != self.obs.shape or len(state["envs"]) != self.num_envs:
            raise ValueError(
                f"env state is for observations {tuple(obs.shape)}, these envs have {self.obs.shape}"
            )
        if self._async is not None:
            self._async.set_attr("hybridpg_state", list(state["envs"]))
            exact = all(bool(e["exact"]) for e in state["envs"])
        else:
            exact = all([restore_env_state(env, s) for env, s in zip(self.envs, state["envs"], strict=True)])
        self.obs = obs.copy()
        self.episode_returns = state["episode_returns"].numpy().astype(np.float64).copy()
        self.episode_lengths = state["episode_lengths"].numpy().astype(np.int64).copy()
        self.total_steps = int(state["total_steps"])
        return exact
