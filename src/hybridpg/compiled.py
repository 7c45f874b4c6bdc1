"""``torch.compile`` for the on-policy minibatch steps, behind one switch (``compile=True``).

A minibatch step of PPO or PROPS on 64-64 networks is about two hundred small eager ops; compiled
(inductor, CPU), the step (``gradient_step.py``) becomes a few fused loops around the matmuls in one
call. This module holds the compiled entry point, its settings, and turns a compiler failure into
one line.

Only the update's usual minibatch size is compiled (``gradient_step.GradientStep`` runs other
sizes eagerly: PROPS's last minibatch, which shrinks while its buffer fills, and is too rare to be
worth a second graph's compile time). Which path a minibatch takes depends only on its size, never
on the sizes met before, so a resumed run computes the same bits as an uninterrupted one. Compiled
code is cached on disk by torch; the first call of a graph in a process still takes seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hybridpg.errors import ConfigError


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _call_by_cpp_wrapper(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)  # a code object of its own: dynamo keeps its graphs per code object


@functools.cache
def _compiled(cpp_wrapper: bool) -> Callable[..., Any]:
    import torch

    # a graph per step function, network shape, minibatch size and config: more than torch's default
    # limit of 8 per code object when one process trains several settings, after which calls would
    # silently run eagerly
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    import torch._inductor.config as inductor

    if inductor.cpp.vec_isa_ok is None:  # unless TORCHINDUCTOR_VEC_ISA_OK says otherwise:
        # the CPU's flags already name its vector ISAs; inductor would also build a probe library per
        # ISA and load it in a fresh Python process, in every training process
        inductor.cpp.vec_isa_ok = True
    if cpp_wrapper:  # an inductor option of this torch.compile alone, not a global setting
        return torch.compile(_call_by_cpp_wrapper, dynamic=False, options={"cpp_wrapper": True})  # type: ignore[no-any-return]
    return torch.compile(_call, dynamic=False)  # type: ignore[no-any-return]


def compiled_call(fn: Callable[..., Any], *args: Any, cpp_wrapper: bool = False) -> Any:
    """``fn(*args)`` through its compiled graph (one per argument shapes). A failure to compile is a
    one-line ``ConfigError`` instead of an inductor traceback.

    ``cpp_wrapper``: inductor's C++ wrapper calls the graph's kernels and allocates its buffers
    without the Python interpreter in between. That pays where a graph is small and called often
    (a single run's minibatch step); it makes a first compile slower, so a graph whose kernels
    outweigh its wrapper (seeds stacked) goes without."""
    try:
        return _compiled(cpp_wrapper)(fn, *args)
    except Exception as exc:  # inductor's errors have no common base class
        from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported

        if isinstance(exc, BackendCompilerFailed | Unsupported | TorchRuntimeError):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"compile=True: torch.compile failed ({reason}); train without it") from None
        raise
