"""Whether a run's evaluation points can support each score column, and why not when they cannot.

Runs evaluate at step 0, every ``eval_freq`` updates and once at the end (``eval/return_mean`` in
metrics.jsonl, with its step). A short run may have only two evaluations (step 0 and the end):
then "the area under the curve" and "the return at 30%" would be made of those two points and
"the mean of the last 3" would average in the untrained policy. So "final" averages only
evaluations in the second half of the budget, and a cell the points cannot support is n/a.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hybridpg.experiments.records import RunData

FloatArray = npt.NDArray[np.float64]

EARLY_FRACTION = 0.3
#: an evaluation stands for a budget fraction when it is at most this fraction of the budget away
TOLERANCE = 0.1
#: the columns in table order; each run supports a column or gives a reason
FINAL, EARLY, AUC = "final", "@30%", "AUC"
COLUMNS = (FINAL, EARLY, AUC)


def _steps(steps: FloatArray, most: int = 4) -> str:
    shown = [f"{s:.0f}" for s in steps[:most]]
    return ", ".join(shown) + (f", ... ({steps.size} in all)" if steps.size > most else "")


def _final(steps: FloatArray, total: int) -> str | None:
    # a last evaluation near the end is also in the second half, so the final window is never empty
    if steps[-1] < (1 - TOLERANCE) * total:
        return f"the last evaluation is at step {steps[-1]:.0f}, not within 10% of the end of the budget {total}"
    return None


def _early(steps: FloatArray, total: int) -> str | None:
    target = EARLY_FRACTION * total
    if steps[0] > target or steps[-1] < target:
        return f"no evaluations around step {target:.0f} (30% of {total}); steps {_steps(steps)}"
    nearest = steps[int(np.argmin(np.abs(steps - target)))]
    if abs(nearest - target) > TOLERANCE * total:
        return (f"the evaluation nearest to step {target:.0f} (30% of {total}) is at step {nearest:.0f}, more "
                f"than 10% of the budget away")
    return None


def _auc(steps: FloatArray, total: int) -> str | None:
    if steps.size < 3:
        return (f"{steps.size} evaluation(s) (steps {_steps(steps)}); an area needs at least 3 (with 2 it "
                f"is only the mean of the first and last)")
    if steps[0] > TOLERANCE * total:
        return f"the first evaluation is at step {steps[0]:.0f}: the curve misses the start of the budget {total}"
    if steps[-1] < (1 - TOLERANCE) * total:
        return f"the last evaluation is at step {steps[-1]:.0f}: the curve misses the end of the budget {total}"
    return None


def unsupported(steps: FloatArray, total: int) -> dict[str, str]:
    """``{column: reason}`` for the columns evaluations at ``steps`` cannot support (budget ``total``)."""
    checks = {FINAL: _final, EARLY: _early, AUC: _auc}
    out = {}
    for column, check in checks.items():
        reason = check(steps, total)
        if reason is not None:
            out[column] = reason
    return out


def row_reasons(runs: list[RunData], key: str) -> dict[str, str]:
    """Why each unsupported column of a row is n/a: a cell pools all of its runs or none of them,
    as a score over the runs that happen to support it would stand for a different set of seeds."""
    failing: dict[str, list[tuple[int, str]]] = {}
    for run in runs:
        for column, reason in unsupported(run.curves[key][0], run.total_timesteps).items():
            failing.setdefault(column, []).append((run.seed, reason))
    out = {}
    for column in COLUMNS:
        if column in failing:
            seed, reason = failing[column][0]
            count = len(failing[column])
            out[column] = f"{count} of {len(runs)} run(s), e.g. seed {seed}: {reason}"
    return out
