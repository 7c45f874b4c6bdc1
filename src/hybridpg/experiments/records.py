"""Run folders read back as records, and the per-env method rows that compare prints and report renders."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from hybridpg.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

LAST_EVALS = 3
EARLY_FRACTION = 0.3
EVAL_KEY = "eval/return_mean"
SE_KEY = "diagnostics/sampling_error"


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
        return float(np.mean(self.curves[EVAL_KEY][1][-LAST_EVALS:]))

    def return_at(self, step: float) -> float:
        steps, values = self.curves[EVAL_KEY]
        return float(np.interp(step, steps, values))

    def auc(self) -> float:
        from hybridpg.stats import area_under_curve

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


@dataclass
class MethodRow:
    method: str
    n: int
    n_unfinished: int
    final: Any  # hybridpg.stats.Estimate
    early: Any
    auc: Any
    final_mean: float
    sampling_error: float | None
    sps: float | None


def group(runs: list[RunData]) -> dict[str, dict[str, list[RunData]]]:
    """``{env: {method: runs}}`` in first-seen order, runs sorted by seed."""
    out: dict[str, dict[str, list[RunData]]] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.algo, r.seed)):
        out.setdefault(run.env, {}).setdefault(run.algo, []).append(run)
    return out


def method_rows(runs: list[RunData], reps: int = 2000, seed: int = 0) -> list[MethodRow]:
    """Table rows for the methods of one env; only finished runs with evaluations count."""
    from hybridpg.stats import per_env_iqm_with_ci

    rows = []
    by_method: dict[str, list[RunData]] = {}
    for run in runs:
        by_method.setdefault(run.algo, []).append(run)
    for method, group_runs in by_method.items():
        done = [r for r in group_runs if r.finished and EVAL_KEY in r.curves]
        if not done:
            continue
        final = np.array([r.final_return() for r in done])
        early = np.array([r.return_at(EARLY_FRACTION * r.total_timesteps) for r in done])
        auc = np.array([r.auc() for r in done])
        se = [float(r.curves[SE_KEY][1].mean()) for r in done if SE_KEY in r.curves]  # over all of training
        sps = [r.sps for r in done if r.sps is not None]
        rows.append(MethodRow(
            method, len(done), len(group_runs) - len(done),
            per_env_iqm_with_ci(final, reps=reps, seed=seed),
            per_env_iqm_with_ci(early, reps=reps, seed=seed),
            per_env_iqm_with_ci(auc, reps=reps, seed=seed),
            float(final.mean()), float(np.mean(se)) if se else None, float(np.median(sps)) if sps else None,
        ))
    return rows


def _ci(est: Any) -> str:
    return f"{est.point:.1f} [{est.low:.1f}, {est.high:.1f}]"


TABLE_HEADER = ["method", "n", "final IQM ↑ [95% CI]", "final mean ↑", "@30% IQM ↑ [95% CI]",
                "AUC IQM ↑ [95% CI]", "sampling err ↓", "SPS ↑"]
#: printed under the tables: what the arrows and the sampling-error column mean
TABLE_LEGEND = ("↑ higher is better, ↓ lower is better. sampling err: KL from the buffer's maximum-likelihood "
                "policy to the target, averaged over training (how far the data each update trains on is "
                "from on-policy data).")


def row_cells(row: MethodRow) -> list[str]:
    n = f"{row.n}" + (f" (+{row.n_unfinished} unfinished)" if row.n_unfinished else "")
    se = "-" if row.sampling_error is None else f"{row.sampling_error:.4f}"
    sps = "-" if row.sps is None else f"{row.sps:.0f}"
    return [row.method, n, _ci(row.final), f"{row.final_mean:.1f}", _ci(row.early), _ci(row.auc), se, sps]


def format_table(env: str, rows: list[MethodRow]) -> str:
    cells = [TABLE_HEADER] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_HEADER))]
    lines = [f"== {env} =="]
    for i, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
