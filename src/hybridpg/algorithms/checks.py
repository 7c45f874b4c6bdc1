"""Small checks and records the shared Agent uses: the device, learning-rate schedules, spaces and RNG states."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hybridpg.errors import ConfigError


def check_device(device: str) -> torch.device:
    """Refuse a device that is not there, before any env is built; never fall back quietly."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device='cuda' but torch.cuda.is_available() is False (torch {torch.__version__}: no CUDA build "
                "or no visible GPU); use device='cpu'"
            )
        warnings.warn(
            "device='cuda': hybridpg's algorithms compute on the CPU (small MLPs); the GPU is not used", stacklevel=3
        )
    return torch.device("cpu")


def space_signature(space: gym.Space[Any]) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({int(space.n)})"
    if isinstance(space, gym.spaces.Box):
        return f"Box(shape={tuple(space.shape)})"
    return type(space).__name__


def np_state(state: tuple[Any, ...]) -> tuple[Any, ...]:
    return (state[0], torch.from_numpy(np.asarray(state[1]).astype(np.int64)), *state[2:])


def from_np_state(state: Any) -> tuple[Any, ...]:
    keys = state[1].numpy().astype(np.uint32)
    return (state[0], keys, *state[2:])


def to_tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(to_tuple(v) for v in value)
    return value


def _call(schedule: Callable[[float], float], remaining: float) -> float:
    try:
        return float(schedule(remaining))
    except Exception as exc:  # the user's function: its failure is one line, not a traceback
        raise ConfigError(f"learning_rate schedule failed at {remaining:.3f}: {type(exc).__name__}: {exc}") from None


def schedule_start(schedule: Callable[[float], float], name: str, supported: bool) -> float:
    """The schedule's value at the start (recorded as the config's learning_rate), checked once."""
    if not supported:
        raise ConfigError(f"{name} takes a number for learning_rate, not a schedule (a callable)")
    start = _call(schedule, 1.0)
    if not 0 < start < float("inf"):
        raise ConfigError(f"learning_rate schedule gives {start!r} at 1.0 (the start); it must be a number > 0")
    return start


def scheduled_lr(schedule: Callable[[float], float], remaining: float) -> float:
    """The schedule's learning rate with ``remaining`` of the budget to go, checked."""
    lr = _call(schedule, remaining)
    if not 0 <= lr < float("inf"):
        raise ConfigError(f"learning_rate schedule gave {lr!r} at {remaining:.3f}; it must be a number >= 0")
    return lr
