"""Building envs: Gymnasium ids (and ``module:EnvId``) with checked keyword arguments, and env
failures as one error line."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from hybridpg.errors import EnvError, HybridPGError

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



class _WorkerFailure(RuntimeError):
    """An exception raised inside an async worker, as ``Type: message``."""


def env_name(env: EnvSpec) -> str:
    if isinstance(env, str):
        return env
    if isinstance(env, gym.Env) and env.spec is not None:
        return env.spec.id
    return type(env).__name__
