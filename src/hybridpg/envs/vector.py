"""Environment construction and a lean vector env with same-step autoreset.

Why our own sync vector env: with one or a few envs, gymnasium's SyncVectorEnv costs a noticeable
share of each step, and its default NEXT_STEP autoreset inserts a dummy transition. Ours steps
the envs, resets finished ones in the same call and hands back the *true* final observation,
which truncation bootstrapping needs. ``async_envs=True`` uses gymnasium's AsyncVectorEnv in
SAME_STEP mode behind the same interface.
"""

from __future__ import annotations

import contextlib
import inspect
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

from hybridpg.errors import EnvError, HybridPGError, NonFiniteError

EnvSpec = str | gym.Env | Callable[[], gym.Env]


def _ensure_registered() -> None:
    try:
        from hybridpg.envs.registry import import_exported_modules, register_envs
    except ImportError:  # toy envs are optional at import time
        return
    register_envs()
    import_exported_modules()


def make_env_fn(env: EnvSpec, **kwargs: Any) -> Callable[[], gym.Env]:
    """A picklable-enough factory for one env; validates the id and the kwargs it can check eagerly,
    and turns any failure of ``gym.make`` into one EnvError line naming the env and its kwargs."""
    if kwargs and not isinstance(env, str):
        raise EnvError(f"env_kwargs {kwargs} need a Gymnasium id, not {type(env).__name__}")
    if isinstance(env, gym.Env):
        instance = env
        return lambda: instance
    if callable(env):
        return env
    if not isinstance(env, str):
        raise EnvError(f"env must be a Gymnasium id, an Env instance or a factory, got {type(env).__name__}")
    env_id = env
    _ensure_registered()
    from hybridpg.envs.registry import import_module_of

    try:
        spec = gym.spec(import_module_of(env_id))  # gym.make imports the module of "module:EnvId" itself; spec does not
    except EnvError:
        raise
    except Exception as exc:  # gymnasium raises several error types for bad ids
        raise EnvError(f"unknown environment id '{env_id}': {str(exc).splitlines()[0]}") from None
    _check_env_kwargs(env_id, spec, kwargs)

    def factory() -> gym.Env:
        try:
            return gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise EnvError(f"environment '{env_id}' needs an extra package: {exc}") from None
        except HybridPGError:
            raise
        except Exception as exc:  # the env's own constructor, fed a value it cannot use
            raise EnvError(f"cannot build {_describe(env_id, kwargs)}: {_one_line(exc)}") from None

    return factory


def _describe(env: EnvSpec, kwargs: dict[str, Any] | None) -> str:
    label = env if isinstance(env, str) else getattr(env, "__qualname__", None) or env_name(env)
    name = f"environment '{label}'"
    return f"{name} with env_kwargs {kwargs}" if kwargs else name


def env_failure(env: EnvSpec, kwargs: dict[str, Any] | None, what: str, exc: BaseException) -> EnvError:
    """The one-line error for an exception raised inside an env, e.g. ``what="failed in step"``;
    for every loop that steps an env itself."""
    return EnvError(f"{_describe(env, kwargs)} {what}: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception raised inside an env (its traceback is not the user's)."""
    # gymnasium appends "was raised from the environment creator ..." (the id and kwargs again)
    text = str(exc).split(" was raised from")[0].strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, _WorkerFailure):  # already "Type: message" from the worker
        return line
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _positive_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= 1)


def _check_env_kwargs(env_id: str, spec: gym.envs.registration.EnvSpec, kwargs: dict[str, Any]) -> None:
    """Refuse kwargs that would otherwise fail deep inside the env, or never fail at all (a
    negative MuJoCo frame_skip runs, with time going backwards), before anything is built."""
    where = _describe(env_id, kwargs)
    steps = kwargs.get("max_episode_steps")
    if steps is not None and not _positive_int(steps):
        raise EnvError(f"{where}: max_episode_steps={steps!r} must be a positive integer "
                       "(or none for the registered limit)")
    if "frame_skip" in kwargs and not _positive_int(kwargs["frame_skip"]):
        raise EnvError(f"{where}: frame_skip={kwargs['frame_skip']!r} must be a positive integer")
    defaults = _constructor_defaults(spec)
    for name, value in kwargs.items():
        given, expected = _kind(value), _kind(defaults.get(name))
        # e.g. text for a weight: accepted by the constructor, a TypeError only at the first step.
        # Only mismatches no env accepts; a sequence for a number may be a per-dimension value.
        if (given == "text" and expected not in (None, "text")) or (
            given in ("a number", "a flag") and expected == "a sequence"
        ):
            raise EnvError(f"{where}: {name}={value!r} is {given}, the env expects {expected} "
                           f"(default {defaults[name]!r})")


def _kind(value: Any) -> str | None:
    """The broad kind of a kwarg value or default, where a mismatch is certainly a mistake."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool | np.bool_):
        return "a flag"
    if isinstance(value, int | float | np.integer | np.floating):
        return "a number"
    if isinstance(value, tuple | list):
        return "a sequence"
    return None


def _constructor_defaults(spec: gym.envs.registration.EnvSpec) -> dict[str, Any]:
    try:
        entry = spec.entry_point
        creator: Any = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        params = inspect.signature(creator).parameters.values()
    except Exception:  # an entry point that cannot be loaded or inspected: gym.make reports it
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def _seed_spaces(env: gym.Env, seed: int | None) -> None:
    env.action_space.seed(seed)
    env.observation_space.seed(seed)


_PLAIN_REWARDS = (float, int)  # a tuple: isinstance with one is cheaper than with float | int


class _WorkerFailure(RuntimeError):
    """An exception raised inside an async worker, as ``Type: message``."""


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
            # a terminal's Ctrl-C reaches the whole process group: the trainer must outlive it
            # with its workers, to checkpoint (env state lives in them) and then close them
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return _StateAccess(factory())

    return build


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


# -- per-env state capture ---------------------------------------------------------------------------
# Env families whose whole dynamic state lives in plain attributes (plus MuJoCo's physics, handled
# separately); for anything else the capture is best effort and resume is not promised bit-exact.
EXACT_ENV_MODULES = ("gymnasium.envs.classic_control", "gymnasium.envs.mujoco", "hybridpg.envs")


def _encode(value: Any) -> dict[str, Any] | None:
    """A checkpoint-safe (tensors and builtins only) form of one attribute, or None to skip it."""
    # numpy scalars first: np.float64 is also a float, but only builtins pass the safe loader
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            return None
        return {"t": "np", "v": value.item(), "dtype": str(value.dtype)}
    if value is None or isinstance(value, bool | int | float | str):
        return {"t": "py", "v": value}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"t": "nd", "v": torch.from_numpy(value.astype(value.dtype.newbyteorder("="), copy=True)),
                "dtype": str(value.dtype)}
    if isinstance(value, np.random.Generator):
        return {"t": "rng", "v": value.bit_generator.state}
    if isinstance(value, tuple | list) and all(
        v is None or (isinstance(v, bool | int | float) and not isinstance(v, np.generic)) for v in value
    ):
        return {"t": "seq", "v": list(value), "tuple": isinstance(value, tuple)}
    return None


def _decode(item: dict[str, Any], current: Any) -> Any:
    kind = item["t"]
    if kind == "nd":
        return item["v"].numpy().astype(np.dtype(item["dtype"])).copy()
    if kind == "np":
        return np.dtype(item["dtype"]).type(item["v"])
    if kind == "rng":
        rng = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        rng.bit_generator.state = item["v"]
        return rng
    if kind == "seq":
        return tuple(item["v"]) if item["tuple"] else list(item["v"])
    return item["v"]


def _layers(env: gym.Env) -> list[Any]:
    out: list[Any] = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


def _mujoco_data(env: Any) -> tuple[Any, Any] | None:
    model, data = getattr(env, "model", None), getattr(env, "data", None)
    if model is None or data is None or type(data).__name__ != "MjData":
        return None
    return model, data


def capture_env_state(env: gym.Env) -> dict[str, Any]:
    """Plain attributes of every wrapper layer and the base env (TimeLimit's step count,
    CartPole's ``state``, the env's ``np_random``), the action space's RNG, and MuJoCo's full
    integration state (qpos, qvel, act, warm start, controls, time)."""
    layers = []
    for layer in _layers(env):
        attrs = {}
        for name, value in vars(layer).items():
            encoded = _encode(value)
            if encoded is not None:
                attrs[name] = encoded
        layers.append(attrs)
    base = env.unwrapped
    state: dict[str, Any] = {
        "layers": layers,
        "action_space_rng": env.action_space.np_random.bit_generator.state,
        "exact": type(base).__module__.startswith(EXACT_ENV_MODULES),
    }
    md = _mujoco_data(base)
    if md is not None:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(md[0], spec))
        mujoco.mj_getState(md[0], md[1], physics, spec)
        state["mujoco"] = torch.from_numpy(physics)
    return state


def restore_env_state(env: gym.Env, state: dict[str, Any]) -> bool:
    """Inverse of ``capture_env_state`` on an env built from the same id; returns ``state['exact']``."""
    layers = _layers(env)
    if len(layers) != len(state["layers"]):
        raise ValueError(f"env has {len(layers)} wrapper layers, the saved state has {len(state['layers'])}")
    for layer, attrs in zip(layers, state["layers"], strict=True):
        for name, item in attrs.items():
            setattr(layer, name, _decode(item, getattr(layer, name, None)))
    env.action_space.np_random.bit_generator.state = state["action_space_rng"]
    md = _mujoco_data(env.unwrapped)
    if md is not None and "mujoco" in state:
        import mujoco

        mujoco.mj_setState(md[0], md[1], state["mujoco"].numpy().copy(), mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(md[0], md[1])  # derived quantities (contacts, sensors) from the restored state
    return bool(state["exact"])


class _StateAccess(gym.Wrapper):  # type: ignore[type-arg]
    """Outermost wrapper of async workers' envs so the parent can get/set their state by attribute."""

    @property
    def hybridpg_state(self) -> dict[str, Any]:
        return capture_env_state(self.env)

    @hybridpg_state.setter
    def hybridpg_state(self, state: dict[str, Any]) -> None:
        restore_env_state(self.env, state)

    @property
    def hybridpg_space_seed(self) -> int | None:
        return getattr(self, "_hybridpg_space_seed", None)

    @hybridpg_space_seed.setter
    def hybridpg_space_seed(self, seed: int | None) -> None:
        self._hybridpg_space_seed = seed
        _seed_spaces(self.env, seed)
