"""``torch.compile`` for the on-policy minibatch steps, behind one switch (``compile=True``).

A minibatch step of PPO or PROPS on 64-64 networks is about two hundred small eager ops; compiled
(inductor, CPU), the step (``gradient_step.py``) becomes a few fused loops around the matmuls in one
call. This module only decides which graph a call takes and turns a compiler failure into one line.

Two graphs per step function: one specialised to the update's usual minibatch size, which nearly every step
takes, and one with a symbolic number of rows for the other sizes (PROPS's last minibatch, which
shrinks while its buffer fills). Which graph a minibatch takes depends only on its size, never on
the sizes met before, so a resumed run computes the same bits as an uninterrupted one. Compiled
code is cached on disk by torch; the first call of a graph in a process still takes seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hybridpg.errors import ConfigError


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


def _mark_rows_dynamic(batch: tuple[Any, ...], rows: int) -> None:
    """The minibatch's rows become a symbolic size in every batch tensor that leads with them."""
    import torch

    for a in batch:
        if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == rows:
            torch._dynamo.maybe_mark_dynamic(a, 0)


def compiled_call(fn: Callable[..., Any], head: tuple[Any, ...], batch: tuple[Any, ...], fixed_rows: int) -> Any:
    """``fn(*head, *batch)`` through its compiled graph for ``fixed_rows``-row minibatches, or the one
    for any other number of rows (the leading size of ``batch[0]``). A failure to compile is a
    one-line ``ConfigError`` instead of an inductor traceback."""
    import torch

    rows = batch[0].shape[0] if isinstance(batch[0], torch.Tensor) else fixed_rows
    any_rows = rows != fixed_rows
    if any_rows:
        _mark_rows_dynamic(batch, rows)
    try:
        return _compiled(any_rows)(fn, *head, *batch)
    except Exception as exc:  # inductor's errors have no common base class
        from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported

        if isinstance(exc, BackendCompilerFailed | Unsupported | TorchRuntimeError):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"compile=True: torch.compile failed ({reason}); train without it") from None
        raise
