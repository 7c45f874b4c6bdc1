"""Interval estimates from rliable's stratified bootstrap, reproducible by an explicit seed (package doc: stats)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType

import numpy as np
import numpy.typing as npt
from rliable import metrics as rly_metrics

from hybridpg.errors import ConfigError
from hybridpg.experiments.stats.scores import (
    METRICS,
    Estimate,
    FloatArray,
    _as_matrix,
    _as_score_dict,
    _check_bootstrap_args,
    _metric_function,
)


@functools.cache
def _rly_library() -> ModuleType:
    """``rliable.library``, imported on first use (it pulls in arch, pandas and statsmodels)."""
    return importlib.import_module("rliable.library")


_RNG_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG for the duration of the block, then restore the previous state."""
    with _RNG_LOCK:
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(saved)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------------
# Interval estimates (rliable stratified bootstrap)
# --------------------------------------------------------------------------------------------


def aggregate_with_ci(
    scores: Mapping[str, npt.ArrayLike],
    metrics: Sequence[str] = METRICS,
    reps: int = 2000,
    seed: int = 0,
    *,
    confidence: float = 0.95,
    threshold: float = 1.0,
) -> dict[str, dict[str, Estimate]]:
    """Point estimates and stratified-bootstrap percentile CIs of aggregate metrics per method.

    All requested metrics are computed on the same bootstrap resamples, in one call to
    ``rliable.library.get_interval_estimates(scores, func, reps=reps, method="percentile")``
    with NumPy's global RNG seeded with ``seed`` (and restored afterwards). Hence the result is
    identical to that rliable call after ``np.random.seed(seed)`` on the same dict.

    Args:
        scores: ``{method: (num_runs, num_tasks) matrix}``.
        metrics: Any of ``"iqm"``, ``"mean"``, ``"median"``, ``"optimality_gap"``.
        reps: Bootstrap replications.
        seed: Seed for the bootstrap resampling.
        confidence: Coverage of the interval (0.95 for 95% CIs).
        threshold: ``gamma`` of the optimality gap.

    Returns:
        ``{method: {metric: Estimate}}``. With a single run per method the CIs have width 0.
    """
    matrices = _as_score_dict(scores)
    _check_bootstrap_args(reps, seed, confidence)
    if isinstance(metrics, str):
        metrics = (metrics,)
    names = list(metrics)
    if len(names) == 0:
        raise ConfigError(f"metrics is empty; choose from {', '.join(METRICS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"metrics contains duplicates: {names}")
    if not math.isfinite(threshold):
        raise ConfigError(f"threshold must be finite, got {threshold!r}")
    functions = [_metric_function(name, threshold) for name in names]

    def aggregate(matrix: FloatArray) -> FloatArray:
        return np.array([f(matrix) for f in functions], dtype=np.float64)

    library = _rly_library()
    with _seeded_global_numpy(int(seed)):
        points, intervals = library.get_interval_estimates(
            matrices,
            aggregate,
            method="percentile",
            reps=int(reps),
            confidence_interval_size=float(confidence),
        )
    return {
        method: {
            name: Estimate(
                point=float(points[method][i]),
                low=float(intervals[method][0, i]),
                high=float(intervals[method][1, i]),
            )
            for i, name in enumerate(names)
        }
        for method in matrices
    }


def per_env_iqm_with_ci(
    scores_1d: npt.ArrayLike,
    reps: int = 2000,
    seed: int = 0,
    *,
    confidence: float = 0.95,
) -> Estimate:
    """IQM over runs of a single environment, with a bootstrap percentile CI over runs.

    ``scores_1d`` has shape ``(num_runs,)``; this is :func:`aggregate_with_ci` on the
    ``(num_runs, 1)`` matrix.
    """
    values = np.asarray(scores_1d, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigError(f"scores_1d must have shape (num_runs,), got {values.shape}")
    result = aggregate_with_ci(
        {"scores": values[:, None]}, metrics=("iqm",), reps=reps, seed=seed, confidence=confidence
    )
    return result["scores"]["iqm"]


def probability_of_improvement(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    reps: int = 2000,
    seed: int = 0,
    *,
    confidence: float = 0.95,
) -> Estimate:
    """Average probability of improvement ``P(X > Y)`` over tasks, with a bootstrap CI.

    Per task, ``P(X > Y)`` is the Mann-Whitney U statistic of ``x`` over ``y`` divided by
    ``num_runs_x * num_runs_y`` (ties count one half); the point estimate is
    ``rliable.metrics.probability_of_improvement(x, y)``. The CI resamples the runs of ``x``
    and ``y`` independently within each task (rliable's ``StratifiedIndependentBootstrap``).

    Args:
        x, y: Score matrices ``(num_runs_x, num_tasks)`` and ``(num_runs_y, num_tasks)``.

    Returns:
        Estimate of P(X > Y); 0.5 means no difference, values near 1 mean X is better.
    """
    mx = _as_matrix(x, "x")
    my = _as_matrix(y, "y")
    if mx.shape[1] != my.shape[1]:
        raise ConfigError(f"x and y must have the same number of tasks, got {mx.shape[1]} and {my.shape[1]}")
    _check_bootstrap_args(reps, seed, confidence)

    def poi(a: FloatArray, b: FloatArray) -> FloatArray:
        return np.array([rly_metrics.probability_of_improvement(a, b)], dtype=np.float64)

    library = _rly_library()
    with _seeded_global_numpy(int(seed)):
        points, intervals = library.get_interval_estimates(
            {"x_vs_y": [mx, my]},
            poi,
            method="percentile",
            reps=int(reps),
            confidence_interval_size=float(confidence),
        )
    return Estimate(
        point=float(points["x_vs_y"][0]),
        low=float(intervals["x_vs_y"][0, 0]),
        high=float(intervals["x_vs_y"][1, 0]),
    )


def performance_profile(
    scores: Mapping[str, npt.ArrayLike],
    taus: npt.ArrayLike,
    reps: int = 2000,
    seed: int = 0,
    *,
    use_score_distribution: bool = True,
    confidence: float = 0.95,
) -> dict[str, tuple[FloatArray, FloatArray, FloatArray]]:
    """Performance profiles (fraction of runs with score > tau) with pointwise bootstrap CIs.

    Wraps ``rliable.library.create_performance_profile``, which takes no RNG argument; it is
    seeded through NumPy's global RNG as described in the module docstring.

    Args:
        scores: ``{method: (num_runs, num_tasks) matrix}``.
        taus: 1-D array of thresholds.
        use_score_distribution: True for the run-score distribution (fraction of all runs and
            tasks above tau); False for the average-score distribution (fraction of tasks whose
            mean over runs is above tau).

    Returns:
        ``{method: (profile, low_ci, high_ci)}``, each a 1-D array with one entry per tau. The
        profile and both CI bounds are non-increasing in tau when ``taus`` is increasing.
    """
    matrices = _as_score_dict(scores)
    _check_bootstrap_args(reps, seed, confidence)
    tau_array = np.asarray(taus, dtype=np.float64)
    if tau_array.ndim != 1 or tau_array.size == 0:
        raise ConfigError(f"taus must be a non-empty 1-D array, got shape {tau_array.shape}")
    if not np.all(np.isfinite(tau_array)):
        raise ConfigError("taus contains NaN/inf")

    library = _rly_library()
    with _seeded_global_numpy(int(seed)):
        profiles, cis = library.create_performance_profile(
            matrices,
            tau_array,
            use_score_distribution=use_score_distribution,
            method="percentile",
            reps=int(reps),
            confidence_interval_size=float(confidence),
        )
    return {
        method: (
            np.asarray(profiles[method], dtype=np.float64),
            np.asarray(cis[method][0], dtype=np.float64),
            np.asarray(cis[method][1], dtype=np.float64),
        )
        for method in matrices
    }


# --------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------


