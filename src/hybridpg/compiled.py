"""``torch.compile`` for the on-policy minibatch losses, behind one switch (``compile=True``).

A minibatch step of PPO or PROPS on 64-64 networks is about a hundred small eager ops. Compiled
(inductor, CPU), the forward becomes a few fused loops around the matmuls, and the backward one
more graph, which cuts most of the per-op cost. The loss functions stay plain Python of tensors
(``ppo_loss.ppo_minibatch_loss``, ``props.props_minibatch_loss``); this module only decides how they
run. The number of rows is a symbolic size from the first call on, so one graph serves every
minibatch size (PROPS's last minibatch shrinks while its buffer fills), and a run computes the
same bits whichever sizes it met first, which keeps resume exact. Compiled code is cached on disk
by torch; the first call of a graph in a process still takes seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from hybridpg.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    import torch

    return torch.compile(fn, dynamic=False)  # type: ignore[no-any-return]


def _mark_rows_dynamic(args: tuple[Any, ...]) -> None:
    """The leading size of the first tensor argument (the minibatch's rows) becomes symbolic in every
    tensor argument that shares it."""
    import torch

    tensors = [a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0]
    rows = tensors[0].shape[0] if tensors else None
    for t in tensors:
        if t.shape[0] == rows:
            torch._dynamo.maybe_mark_dynamic(t, 0)


def maybe_compiled(fn: F, enabled: bool) -> F:
    """``fn`` itself, or (``enabled``) one shared compiled version of it whose failure to compile
    is a one-line ``ConfigError`` instead of an inductor traceback."""
    if not enabled:
        return fn
    compiled = _compiled(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        _mark_rows_dynamic(args)
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # inductor's errors have no common base class
            from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported

            if isinstance(exc, BackendCompilerFailed | Unsupported | TorchRuntimeError):
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"compile=True: torch.compile failed ({reason}); train without it") from None
            raise

    return call  # type: ignore[return-value]
