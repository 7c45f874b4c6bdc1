"""The per-env table: one row per setting with IQM scores and CIs, as compare prints and report renders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hybridpg.experiments.columns import AUC, EARLY, EARLY_FRACTION, FINAL, row_reasons
from hybridpg.experiments.grouping import Setting, group_settings
from hybridpg.experiments.records import EVAL_KEY, SE_KEY, RunData

if TYPE_CHECKING:
    from hybridpg.experiments.stats import Estimate

#: fewer seeds than this get a warning: a bootstrap interval over 1 or 2 runs says little
MIN_SEEDS = 3
NA = "n/a"


@dataclass
class MethodRow:
    """One setting's row of an env's table; a score is None where the evaluations cannot support it."""

    method: str  # the setting's label, e.g. "ppo [total_timesteps=3000]"
    n: int
    n_unfinished: int
    final: Estimate | None
    early: Estimate | None
    auc: Estimate | None
    final_mean: float | None
    sampling_error: float | None
    sps: float | None
    env: str = ""
    runs: list[RunData] = field(default_factory=list)  # the scored runs (finished, with evaluations), by seed
    na: dict[str, str] = field(default_factory=dict)  # column -> why its cell is n/a
    config: dict[str, Any] = field(default_factory=dict)  # the first run's config


def group(runs: list[RunData]) -> dict[str, dict[str, list[RunData]]]:
    """``{env: {setting label: runs}}``, runs sorted by seed; unlike settings are never merged."""
    return {env: {s.label: s.runs for s in settings} for env, settings in group_settings(runs).items()}


def setting_row(setting: Setting, reps: int = 2000, seed: int = 0) -> MethodRow | None:
    """The row of one setting over its finished runs with evaluations, or None when it has none."""
    from hybridpg.experiments.stats import per_env_iqm_with_ci

    done = [r for r in setting.runs if r.finished and EVAL_KEY in r.curves]
    if not done:
        return None
    na = row_reasons(done, EVAL_KEY)

    def iqm(column: str, scores: Callable[[RunData], float]) -> Estimate | None:
        if column in na:
            return None
        return per_env_iqm_with_ci(np.array([scores(r) for r in done]), reps=reps, seed=seed)

    se = [float(r.curves[SE_KEY][1].mean()) for r in done if SE_KEY in r.curves]  # over all of training
    sps = [r.sps for r in done if r.sps is not None]
    return MethodRow(
        setting.label, len(done), len(setting.runs) - len(done),
        iqm(FINAL, RunData.final_return),
        iqm(EARLY, lambda r: r.return_at(EARLY_FRACTION * r.total_timesteps)),
        iqm(AUC, RunData.auc),
        None if FINAL in na else float(np.mean([r.final_return() for r in done])),
        float(np.mean(se)) if se else None, float(np.median(sps)) if sps else None,
        env=setting.env, runs=done, na=na, config=setting.runs[0].config,
    )


def env_rows(settings: list[Setting], reps: int = 2000, seed: int = 0) -> tuple[list[MethodRow], list[str]]:
    """The rows of one env's settings, and the lines that say what a row or cell leaves out and why."""
    rows, notes = [], []
    for setting in settings:
        row = setting_row(setting, reps=reps, seed=seed)
        where = f"{setting.env} {setting.label}"
        if row is None:
            unfinished = sum(not r.finished for r in setting.runs)
            why = f"{unfinished} unfinished" + (f", {len(setting.runs) - unfinished} without {EVAL_KEY}"
                                                if unfinished < len(setting.runs) else "")
            notes.append(f"left out {where}: no finished runs with evaluations ({why})")
            continue
        rows.append(row)
        notes += [f"n/a {where} {column}: {reason}" for column, reason in row.na.items()]
        if row.n < MIN_SEEDS:
            notes.append(f"warning: {where}: n={row.n}: the interval says little")
    return rows, notes


def method_rows(runs: list[RunData], reps: int = 2000, seed: int = 0) -> list[MethodRow]:
    """Table rows of every setting in ``runs`` (envs in name order); only finished runs with evaluations count."""
    return [row for settings in group_settings(runs).values() for row in env_rows(settings, reps, seed)[0]]


def _ci(est: Estimate | None) -> str:
    return NA if est is None else f"{est.point:.1f} [{est.low:.1f}, {est.high:.1f}]"


TABLE_HEADER = ["method", "n", "final IQM ↑ [95% CI]", "final mean ↑", "@30% IQM ↑ [95% CI]",
                "AUC IQM ↑ [95% CI]", "sampling err ↓", "SPS ↑"]
#: printed under the tables: what the columns, arrows and n/a mean
TABLE_LEGEND = ("↑ higher is better, ↓ lower is better. One row per setting (algo, env, budget and every config "
                "field that changes learning); seeds of one setting only. final: mean of the last 3 evaluations in "
                "the second half of the budget (fewer where a run has fewer there; the last within 10% of its "
                "end). @30%: eval return at 30% of the run's budget, interpolated between the evaluations "
                "around it (one within 10% of the budget). AUC: area under the eval curve over its step span "
                "(at least 3 evaluations spanning the budget). n/a: the runs' "
                "evaluations cannot support that column (why is printed). sampling err: KL from the buffer's "
                "maximum-likelihood policy to the target, averaged over training (how far the data each update "
                "trains on is from on-policy data).")


def row_cells(row: MethodRow) -> list[str]:
    n = f"{row.n}" + (f" (+{row.n_unfinished} unfinished)" if row.n_unfinished else "")
    se = "-" if row.sampling_error is None else f"{row.sampling_error:.4f}"
    sps = "-" if row.sps is None else f"{row.sps:.0f}"
    mean = NA if row.final_mean is None else f"{row.final_mean:.1f}"
    return [row.method, n, _ci(row.final), mean, _ci(row.early), _ci(row.auc), se, sps]


def format_table(env: str, rows: list[MethodRow]) -> str:
    cells = [TABLE_HEADER] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_HEADER))]
    lines = [f"== {env} =="]
    for i, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
