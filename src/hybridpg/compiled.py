"""``torch.compile`` for the on-policy minibatch losses, behind one switch (``compile=True``).

A minibatch step of PPO or PROPS on 64-64 networks is about a hundred small eager ops. Compiled
(inductor, CPU), the forward becomes a few fused loops around the matmuls, and the backward one
more graph, which cuts most of the per-op cost. The loss functions stay plain Python of tensors
(``ppo_loss.ppo_minibatch_loss``, ``props.props_minibatch_loss``); this module only decides how they
run. Shapes are fixed per graph (a new minibatch size compiles once more), compiled code is cached
on disk by torch, and the first call of each graph takes seconds.
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

    # shapes become dynamic after the first new minibatch size (a growing buffer has many); once
    # torch.compile's recompile limit is reached, calls run eagerly instead of failing
    return torch.compile(fn)  # type: ignore[no-any-return]


def maybe_compiled(fn: F, enabled: bool) -> F:
    """``fn`` itself, or (``enabled``) one shared compiled version of it whose failure to compile
    is a one-line ``ConfigError`` instead of an inductor traceback."""
    if not enabled:
        return fn
    compiled = _compiled(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # inductor's errors have no common base class
            from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported

            if isinstance(exc, BackendCompilerFailed | Unsupported | TorchRuntimeError):
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"compile=True: torch.compile failed ({reason}); train without it") from None
            raise

    return call  # type: ignore[return-value]
