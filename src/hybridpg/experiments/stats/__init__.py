"""Statistics for comparing RL methods honestly, built on `rliable <https://github.com/google-research/rliable>`_.

Conventions (the same as rliable's):

* A **score matrix** is a float array of shape ``(num_runs, num_tasks)``: ``scores[n, m]`` is the
  (normalized) score of run/seed ``n`` on task/environment ``m``.
* A **score dict** maps a method name to its score matrix. Every method must have the same number
  of tasks (in the same order); the number of runs may differ between methods.

Point estimates (:func:`iqm`, :func:`mean`, :func:`median`, :func:`optimality_gap`) call
``rliable.metrics`` directly, so they equal rliable's values bit for bit. Interval estimates are
95% percentile confidence intervals from rliable's *stratified* bootstrap (runs are resampled
with replacement within each task; tasks are kept fixed).

Reproducibility. rliable 1.2's bootstrap classes draw their indices from NumPy's *global*
``np.random`` state and ignore the ``random_state`` argument (passing one only triggers a
deprecation warning in ``arch``). Every bootstrap function here therefore takes an explicit
``seed``: the global state is saved, seeded, used, and restored afterwards, so callers'
global RNG streams are not disturbed. This is serialized by a module lock, but another thread
that uses ``np.random`` at the same moment would still interleave with it.

Degenerate inputs. A single task is fine (the stratified bootstrap becomes an ordinary bootstrap
over runs). A single run is accepted too, but then every bootstrap resample is identical and the
confidence interval has **width 0** (``low == point == high``): it says nothing about
uncertainty, so report the number of runs alongside it. Empty input, wrong shapes and NaN/inf
scores raise :class:`hybridpg.errors.ConfigError`.

Compatibility note. ``rliable.library`` imports ``arch``; rliable requires ``arch < 8`` and
``arch`` 7 does not import under pandas 3, so the package pins ``pandas < 3`` (pyproject.toml)
rather than patching either library at import time.
"""

from hybridpg.experiments.stats.intervals import (
    _rly_library as _rly_library,  # the rliable module behind the intervals (tests compare with it)
)
from hybridpg.experiments.stats.intervals import (
    aggregate_with_ci,
    per_env_iqm_with_ci,
    performance_profile,
    probability_of_improvement,
)
from hybridpg.experiments.stats.scores import (
    METRICS,
    Estimate,
    area_under_curve,
    iqm,
    mean,
    median,
    normalize,
    optimality_gap,
)

__all__ = [
    "METRICS",
    "Estimate",
    "aggregate_with_ci",
    "area_under_curve",
    "iqm",
    "mean",
    "median",
    "normalize",
    "optimality_gap",
    "per_env_iqm_with_ci",
    "performance_profile",
    "probability_of_improvement",
]
