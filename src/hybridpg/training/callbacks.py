"""Callbacks for ``learn(..., callback=...)``, in the spirit of Stable-Baselines3's.

Three events: ``on_rollout_end`` (the algorithm collected a batch of env steps), ``on_update`` (it
finished an update, with the update's metrics) and ``on_eval`` (an evaluation ran, with its mean
return). A hook that returns ``False`` stops training: the run evaluates, writes its checkpoints
and a summary with status "stopped", and ``hybridpg train --resume`` can continue it later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridpg.errors import ConfigError
from hybridpg.training.learner import Learner

HOOKS = ("on_rollout_end", "on_update", "on_eval")


@dataclass(frozen=True)
class CallbackEvent:
    kind: str  # "rollout_end", "update" or "eval"
    agent: Learner
    global_step: int
    updates: int
    metrics: Mapping[str, float] = field(default_factory=dict)  # the update's, or eval/return_mean and _std
    eval_return: float | None = None  # "eval" events only


class Callback:
    """Override any hook; returning False stops training, anything else continues."""

    def on_rollout_end(self, event: CallbackEvent) -> bool | None:
        del event
        return None

    def on_update(self, event: CallbackEvent) -> bool | None:
        del event
        return None

    def on_eval(self, event: CallbackEvent) -> bool | None:
        del event
        return None


class _FunctionCallback(Callback):
    """A plain function gets every event (``event.kind`` tells which)."""

    def __init__(self, fn: Callable[[CallbackEvent], bool | None]) -> None:
        self.fn = fn

    def on_rollout_end(self, event: CallbackEvent) -> bool | None:
        return self.fn(event)

    def on_update(self, event: CallbackEvent) -> bool | None:
        return self.fn(event)

    def on_eval(self, event: CallbackEvent) -> bool | None:
        return self.fn(event)


class _HookCallback(Callback):
    """Any object with some of the hooks (no need to subclass ``Callback``)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def _call(self, name: str, event: CallbackEvent) -> bool | None:
        hook = getattr(self.obj, name, None)
        return None if hook is None else hook(event)

    def on_rollout_end(self, event: CallbackEvent) -> bool | None:
        return self._call("on_rollout_end", event)

    def on_update(self, event: CallbackEvent) -> bool | None:
        return self._call("on_update", event)

    def on_eval(self, event: CallbackEvent) -> bool | None:
        return self._call("on_eval", event)


class CallbackList(Callback):
    """Several callbacks; every one sees every event, and any False stops training."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def _all(self, name: str, event: CallbackEvent) -> bool | None:
        results = [getattr(c, name)(event) for c in self.callbacks]
        return False if any(r is False for r in results) else None

    def on_rollout_end(self, event: CallbackEvent) -> bool | None:
        return self._all("on_rollout_end", event)

    def on_update(self, event: CallbackEvent) -> bool | None:
        return self._all("on_update", event)

    def on_eval(self, event: CallbackEvent) -> bool | None:
        return self._all("on_eval", event)


def as_callback(obj: Any) -> Callback | None:
    """None, a Callback, an object with hooks, a function of one event, or a list of those."""
    if obj is None or isinstance(obj, Callback):
        return obj
    if isinstance(obj, list | tuple):
        return CallbackList([c for c in (as_callback(o) for o in obj) if c is not None])
    if any(callable(getattr(obj, name, None)) for name in HOOKS):
        return _HookCallback(obj)
    if callable(obj):
        return _FunctionCallback(obj)
    raise ConfigError(
        f"callback={obj!r}: pass a function of one CallbackEvent, or an object with "
        f"{', '.join(HOOKS)} methods (hybridpg.training.callbacks.Callback)"
    )
