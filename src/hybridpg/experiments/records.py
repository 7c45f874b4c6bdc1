"""Run folders read back as records: each run's settings and its evaluation and sampling-error curves."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import yaml

from hybridpg.errors import ConfigError

if TYPE_CHECKING:
    pass

FloatArray = npt.NDArray[np.float64]

EVAL_KEY = "eval/return_mean"
SE_KEY = "diagnostics/sampling_error"
#: "final" averages the last LAST_EVALS evaluations at or after FINAL_FROM of the budget
LAST_EVALS = 3
FINAL_FROM = 0.5


def final_window(steps: FloatArray, total: int) -> npt.NDArray[np.bool_]:
    """The evaluations averaged into "final": the last ``LAST_EVALS`` in the second half of the budget
    (fewer where a run has fewer there), so that early training is never averaged in."""
    late = np.flatnonzero(steps >= FINAL_FROM * total)[-LAST_EVALS:]
    mask = np.zeros(steps.shape, dtype=np.bool_)
    mask[late] = True
    return mask


@dataclass
class RunData:
    path: Path
    algo: str
    env: str
    seed: int
    total_timesteps: int
    config: dict[str, Any]
    finished: bool
    sps: float | None
    curves: dict[str, tuple[FloatArray, FloatArray]] = field(default_factory=dict)

    def final_return(self) -> float:
        """Mean of the last 3 evaluations in the second half of the budget (fewer where the run has
        fewer there; the last 3 of all when it has none there, which compare shows as n/a)."""
        steps, values = self.curves[EVAL_KEY]
        window = final_window(steps, self.total_timesteps)
        return float(np.mean(values[window] if window.any() else values[-LAST_EVALS:]))

    def return_at(self, step: float) -> float:
        steps, values = self.curves[EVAL_KEY]
        return float(np.interp(step, steps, values))

    def auc(self) -> float:
        from hybridpg.experiments.stats import area_under_curve

        steps, values = self.curves[EVAL_KEY]
        return area_under_curve(steps, values) if steps.size >= 2 else float(values[0])


def _curve(records: list[dict[str, float]], key: str) -> tuple[FloatArray, FloatArray] | None:
    # a resumed run re-logs the steps after its checkpoint: the last value logged at a step wins
    by_step = {int(r["step"]): float(r[key]) for r in records if key in r and math.isfinite(float(r[key]))}
    if not by_step:
        return None
    steps = np.array(sorted(by_step), dtype=np.float64)
    return steps, np.array([by_step[int(s)] for s in steps], dtype=np.float64)


def load_run(path: Path) -> RunData | None:
    """One run folder, or None when it has no usable config (e.g. it failed before training) or
    unreadable results (then with one warning line on stderr: one bad folder must not end a comparison)."""
    from hybridpg.training.logger import read_metrics

    try:
        doc = yaml.safe_load((path / "config.yaml").read_text()) or {}
        run = RunData(path, str(doc["algo"]), str(doc["env"]), int(doc["seed"]), int(doc["total_timesteps"]),
                      dict(doc.get("config", {})), finished=False, sps=None)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None
    try:
        try:
            summary = json.loads((path / "summary.json").read_text())
        except FileNotFoundError:
            summary = {}
        if not isinstance(summary, dict):
            raise ValueError(f"summary.json holds {json.dumps(summary)[:40]}, not an object")
        run.finished = summary.get("status") == "finished"
        run.sps = float(summary["sps"]) if summary.get("sps") is not None else None
        records = read_metrics(path / "metrics.jsonl") if (path / "metrics.jsonl").exists() else []
        for key in (EVAL_KEY, SE_KEY):
            curve = _curve(records, key)
            if curve is not None:
                run.curves[key] = curve
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:  # UnicodeDecodeError is a ValueError
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        print(f"warning: skipping run folder {path}: {reason}", file=sys.stderr)
        return None
    return run


def load_runs(root: Path) -> list[RunData]:
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    runs = [run for p in sorted(root.rglob("config.yaml"))
            if ".ray" not in p.relative_to(root).parts and (run := load_run(p.parent)) is not None]
    if not runs:
        raise ConfigError(f"no run folders (with config.yaml) under {root}")
    return runs
