"""``torch.compile`` for the on-policy minibatch losses, behind one switch (``compile=True``).

A minibatch step of PPO or PROPS on 64-64 networks is about a hundred small eager ops. Compiled
(inductor, CPU), the forward becomes a few fused loops around the matmuls, and the backward one
more graph, which cuts most of the per-op cost. The loss functions stay plain Python of tensors
(``ppo_loss.ppo_minibatch_loss``, ``props.props_minibatch_loss``); this module only decides how they
run.

Two graphs per loss: one specialised to the update's usual minibatch size, which nearly every step
takes, and one with a symbolic number of rows for the other sizes (PROPS's last minibatch, which
shrinks while its buffer fills). Which graph a minibatch takes depends only on its size, never on
the sizes met before, so a resumed run computes the same bits as an uninterrupted one. Compiled
code is cached on disk by torch; the first call of a graph in a process still takes seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from hybridpg.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _fixed_rows(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _any_rows(fn: Callable[..., Any], *args: Any) -> Any:  # its own code object, so its own graph cache
    return fn(*args)


@functools.cache
def _compiled(any_rows: bool) -> Callable[..., Any]:
    import torch

    # a graph per loss, fixed size, network shape and config: more than torch's default limit of 8 per
    # code object when one process trains several settings, after which calls would silently run eagerly
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(_any_rows if any_rows else _fixed_rows, dynamic=False)  # type: ignore[no-any-return]


def _rows(args: tuple[Any, ...]) -> int | None:
    """The leading size of the first tensor argument with one (the minibatch's rows)."""
    import torch

    return next((a.shape[0] for a in args if isinstance(a, torch.Tensor) and a.dim() > 0), None)


def _mark_rows_dynamic(args: tuple[Any, ...]) -> None:
    """The minibatch's rows become a symbolic size in every tensor argument that leads with them."""
    import torch

    rows = _rows(args)
    for a in args:
        if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == rows:
            torch._dynamo.maybe_mark_dynamic(a, 0)


def maybe_compiled(fn: F, enabled: bool, rows: int) -> F:
    """``fn`` itself, or (``enabled``) its compiled graphs: the one for ``rows``-row minibatches and
    the one for any other size. Positional arguments only. A failure to compile is a one-line
    ``ConfigError`` instead of an inductor traceback."""
    if not enabled:
        return fn

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        any_rows = _rows(args) != rows
        if any_rows:
            _mark_rows_dynamic(args)
        try:
            return _compiled(any_rows)(fn, *args)
        except Exception as exc:  # inductor's errors have no common base class
            from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported

            if isinstance(exc, BackendCompilerFailed | Unsupported | TorchRuntimeError):
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"compile=True: torch.compile failed ({reason}); train without it") from None
            raise

    return call  # type: ignore[return-value]
