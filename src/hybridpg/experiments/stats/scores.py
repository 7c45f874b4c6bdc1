"""Score matrices, point estimates (rliable's own functions) and normalization."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.integrate
from rliable import metrics as rly_metrics

from hybridpg.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
MetricName = Literal["iqm", "mean", "median", "optimality_gap"]

#: Names accepted by :func:`aggregate_with_ci`.
METRICS: tuple[MetricName, ...] = ("iqm", "mean", "median", "optimality_gap")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval ``[low, high]``."""

    point: float
    low: float
    high: float

    @property
    def width(self) -> float:
        """Width of the confidence interval, ``high - low``."""
        return self.high - self.low

    def __str__(self) -> str:
        return f"{self.point:.3f} [{self.low:.3f}, {self.high:.3f}]"


# --------------------------------------------------------------------------------------------
# rliable import
# --------------------------------------------------------------------------------------------


def _as_matrix(scores: npt.ArrayLike, name: str = "scores") -> FloatArray:
    """Return ``scores`` as a finite float64 ``(num_runs, num_tasks)`` matrix or raise ConfigError."""
    try:
        matrix = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array of shape (num_runs, num_tasks): {exc}") from None
    if matrix.ndim != 2:
        raise ConfigError(
            f"{name} must have shape (num_runs, num_tasks), got an array with shape {matrix.shape}"
        )
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ConfigError(f"{name} is empty (shape {matrix.shape}); need at least one run and one task")
    if not np.all(np.isfinite(matrix)):
        bad = int(np.size(matrix) - np.count_nonzero(np.isfinite(matrix)))
        raise ConfigError(f"{name} contains {bad} NaN/inf value(s); remove or fix the failed runs first")
    return matrix


def _as_score_dict(scores: Mapping[str, npt.ArrayLike]) -> dict[str, FloatArray]:
    """Validate a method -> score matrix dict; all methods must have the same number of tasks."""
    if not isinstance(scores, Mapping):
        raise ConfigError(
            f"scores must be a dict of method -> (num_runs, num_tasks) array, got {type(scores).__name__}"
        )
    if len(scores) == 0:
        raise ConfigError("scores is empty; need at least one method")
    out = {str(method): _as_matrix(matrix, f"scores[{method!r}]") for method, matrix in scores.items()}
    num_tasks = {method: matrix.shape[1] for method, matrix in out.items()}
    if len(set(num_tasks.values())) > 1:
        raise ConfigError(f"all methods must have the same number of tasks, got {num_tasks}")
    return out


def _check_bootstrap_args(reps: int, seed: int, confidence: float) -> None:
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ConfigError(f"reps must be a positive integer, got {reps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


# --------------------------------------------------------------------------------------------
# Point estimates (exactly rliable.metrics)
# --------------------------------------------------------------------------------------------


def iqm(scores: npt.ArrayLike) -> float:
    """Interquartile mean over all runs and tasks (25% trimmed mean of the flattened matrix).

    Equals ``rliable.metrics.aggregate_iqm(scores)`` exactly.
    """
    return float(rly_metrics.aggregate_iqm(_as_matrix(scores)))


def mean(scores: npt.ArrayLike) -> float:
    """Mean over tasks of the per-task mean over runs.

    Equals ``rliable.metrics.aggregate_mean(scores)`` exactly.
    """
    return float(rly_metrics.aggregate_mean(_as_matrix(scores)))


def median(scores: npt.ArrayLike) -> float:
    """Median over tasks of the per-task mean over runs.

    Equals ``rliable.metrics.aggregate_median(scores)`` exactly.
    """
    return float(rly_metrics.aggregate_median(_as_matrix(scores)))


def optimality_gap(scores: npt.ArrayLike, threshold: float = 1.0) -> float:
    """How far scores fall short of ``threshold`` on average (scores above it count as ``threshold``).

    Lower is better. Equals ``rliable.metrics.aggregate_optimality_gap(scores, gamma=threshold)``.
    """
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be finite, got {threshold!r}")
    return float(rly_metrics.aggregate_optimality_gap(_as_matrix(scores), gamma=threshold))


def _metric_function(name: str, threshold: float) -> Callable[[FloatArray], Any]:
    if name == "iqm":
        return rly_metrics.aggregate_iqm
    if name == "mean":
        return rly_metrics.aggregate_mean
    if name == "median":
        return rly_metrics.aggregate_median
    if name == "optimality_gap":
        return functools.partial(rly_metrics.aggregate_optimality_gap, gamma=threshold)
    raise ConfigError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")


# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------


def normalize(
    scores_by_env: Mapping[str, Mapping[str, npt.ArrayLike]],
    ref: Literal["max"] | Mapping[str, tuple[float, float]] = "max",
    *,
    low: Mapping[str, float] | None = None,
) -> dict[str, FloatArray]:
    """Normalize raw returns per environment and stack them into rliable score matrices.

    Args:
        scores_by_env: ``{env: {method: returns}}`` where ``returns`` is a 1-D array with one
            final score per run/seed. Every env must contain the same methods, and a method must
            have the same number of runs in every env.
        ref: ``"max"`` for max-normalization: per env, ``(x - low) / max(x - low)`` where the max
            runs over all methods and runs of that env and ``low`` is ``low[env]`` (0 when
            ``low`` is None), so the best run of each env scores exactly 1. Or a dict
            ``{env: (low, high)}`` for reference normalization ``(x - low) / (high - low)``
            (e.g. random and expert scores, giving 0 = random, 1 = expert).
        low: Optional per-env low reference subtracted before max-normalization (only with
            ``ref="max"``). Needed when returns can be negative.

    Returns:
        ``{method: matrix}`` with ``matrix.shape == (num_runs, num_envs)``; column ``m`` is the
        ``m``-th env of ``scores_by_env`` (insertion order), methods in the order of the first env.

    Raises:
        ConfigError: empty input, mismatched methods or run counts, non-finite scores, a missing
            or degenerate reference (``high <= low``), or a non-positive max.
    """
    if not isinstance(scores_by_env, Mapping) or len(scores_by_env) == 0:
        raise ConfigError("scores_by_env is empty; need {env: {method: 1-D array of per-run scores}}")
    envs = list(scores_by_env)
    first = scores_by_env[envs[0]]
    if not isinstance(first, Mapping) or len(first) == 0:
        raise ConfigError(f"scores_by_env[{envs[0]!r}] has no methods")
    methods = list(first)

    raw: dict[str, dict[str, FloatArray]] = {}
    for env in envs:
        per_method = scores_by_env[env]
        if not isinstance(per_method, Mapping) or set(per_method) != set(methods):
            got = sorted(per_method) if isinstance(per_method, Mapping) else type(per_method).__name__
            raise ConfigError(f"env {env!r} has methods {got}, expected {sorted(methods)}")
        raw[env] = {}
        for method in methods:
            values = np.asarray(per_method[method], dtype=np.float64)
            if values.ndim != 1 or values.size == 0:
                raise ConfigError(
                    f"scores_by_env[{env!r}][{method!r}] must be a non-empty 1-D array of per-run scores, "
                    f"got shape {values.shape}"
                )
            if not np.all(np.isfinite(values)):
                raise ConfigError(f"scores_by_env[{env!r}][{method!r}] contains NaN/inf")
            raw[env][method] = values

    for method in methods:
        runs = {env: raw[env][method].size for env in envs}
        if len(set(runs.values())) > 1:
            raise ConfigError(f"method {method!r} has different numbers of runs per env: {runs}")

    normalized: dict[str, dict[str, FloatArray]] = {}
    if isinstance(ref, str):
        if ref != "max":
            raise ConfigError(f"ref must be 'max' or a dict env -> (low, high), got {ref!r}")
        lows = dict(low) if low is not None else {}
        missing = [env for env in envs if low is not None and env not in lows]
        if missing:
            raise ConfigError(f"low reference missing for env(s) {missing}")
        for env in envs:
            offset = float(lows.get(env, 0.0))
            if not math.isfinite(offset):
                raise ConfigError(f"low reference for env {env!r} is not finite: {offset!r}")
            top = max(float(np.max(v)) for v in raw[env].values()) - offset
            if top <= 0.0:
                raise ConfigError(
                    f"cannot max-normalize env {env!r}: best score minus low reference is {top:g} <= 0 "
                    "(pass low= or a (low, high) reference)"
                )
            normalized[env] = {m: (v - offset) / top for m, v in raw[env].items()}
    elif isinstance(ref, Mapping):
        if low is not None:
            raise ConfigError("low= is only used with ref='max'; put the low value in the (low, high) ref")
        for env in envs:
            if env not in ref:
                raise ConfigError(f"reference (low, high) missing for env {env!r}")
            try:
                lo, hi = (float(x) for x in ref[env])
            except (TypeError, ValueError):
                raise ConfigError(
                    f"reference for env {env!r} must be a (low, high) pair, got {ref[env]!r}"
                ) from None
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
                raise ConfigError(f"reference for env {env!r} needs finite low < high, got ({lo:g}, {hi:g})")
            normalized[env] = {m: (v - lo) / (hi - lo) for m, v in raw[env].items()}
    else:
        raise ConfigError(f"ref must be 'max' or a dict env -> (low, high), got {type(ref).__name__}")

    return {method: np.stack([normalized[env][method] for env in envs], axis=1) for method in methods}


def area_under_curve(steps: npt.ArrayLike, values: npt.ArrayLike) -> float:
    """Normalized area under a learning curve: trapezoid integral divided by the step span.

    The result is the time-averaged value of the curve over ``[steps[0], steps[-1]]``, in the
    same units as ``values`` (a constant curve ``c`` gives ``c``), so curves logged over
    different budgets or at different step grids are comparable.

    Args:
        steps: 1-D strictly increasing environment steps (at least two).
        values: 1-D values (e.g. evaluation returns) at those steps.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ConfigError(f"steps and values must be 1-D arrays of equal length, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise ConfigError(f"need at least two points to integrate a learning curve, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ConfigError("steps/values contain NaN/inf")
    if not np.all(np.diff(x) > 0):
        raise ConfigError("steps must be strictly increasing")
    return float(scipy.integrate.trapezoid(y, x) / (x[-1] - x[0]))
