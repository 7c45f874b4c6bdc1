"""Plots (learning curves, sampling error, performance profile) and a self-contained report.html.

One curve per table row (setting), over the runs the row scores; a row a plot cannot draw is named
with the reason, never dropped silently.

Curve bands: the mean over seeds at each point of a common step grid, with a 95% percentile
bootstrap band over seeds. The bootstrap is vectorized here because calling rliable once per grid
point (tens of points x methods x envs, ~0.25 s each) would make ``compare`` take minutes; the
headline numbers (tables, performance profile) use :mod:`hybridpg.experiments.stats`, i.e. rliable.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import yaml

from hybridpg.errors import ConfigError
from hybridpg.experiments.records import EVAL_KEY, SE_KEY, RunData
from hybridpg.experiments.table import TABLE_HEADER, TABLE_LEGEND, row_cells

if TYPE_CHECKING:
    from hybridpg.experiments.table import MethodRow

FloatArray = npt.NDArray[np.float64]
GRID_POINTS = 100


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bootstrap_mean_band(
    values: FloatArray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean over rows of ``values`` (runs x points) and a percentile bootstrap band over runs."""
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    idx = rng.integers(0, n, size=(reps, n))
    means = values[idx].mean(axis=1)  # (reps, points)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return values.mean(axis=0), low, high


def common_grid(runs: list[RunData], key: str) -> FloatArray | None:
    """Steps covered by every run's curve (so no run is extrapolated), or None when they do not overlap."""
    curves = [r.curves[key][0] for r in runs if key in r.curves]
    if not curves:
        return None
    start, end = max(c[0] for c in curves), min(c[-1] for c in curves)
    if end < start:
        return None
    return np.linspace(start, end, GRID_POINTS) if end > start else np.array([start])


def _left_out(runs: list[RunData], key: str) -> str | None:
    """Why a method's curve cannot be drawn, or None."""
    with_curve = [r for r in runs if key in r.curves]
    if not with_curve:
        return f"no run logged {key}"
    grid = common_grid(with_curve, key)
    if grid is None:
        first = max(with_curve, key=lambda r: r.curves[key][0][0])
        last = min(with_curve, key=lambda r: r.curves[key][0][-1])
        return (f"its runs share no step range (seed {first.seed} starts at step {first.curves[key][0][0]:.0f}, "
                f"seed {last.seed} ends at step {last.curves[key][0][-1]:.0f})")
    if grid.size < 2:
        return f"its runs share one evaluation step ({grid[0]:.0f}): no curve to draw"
    return None


def plot_curves(env: str, methods: dict[str, list[RunData]], key: str, ylabel: str, path: Path,
                reps: int, notes: list[str] | None = None) -> bool:
    """Draw each method's mean curve with its band; what is left out (and why) goes to ``notes``."""
    notes = [] if notes is None else notes
    where = f"plot {path.stem}"
    if not any(key in r.curves for runs in methods.values() for r in runs):
        notes.append(f"{where}: not drawn: no run logged {key}")
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = False
    for method, runs in methods.items():
        reason = _left_out(runs, key)
        if reason is not None:
            notes.append(f"{where}: left out {method}: {reason}")
            continue
        with_curve = [r for r in runs if key in r.curves]
        if len(with_curve) < len(runs):
            notes.append(f"{where}: {method} is drawn from {len(with_curve)} of {len(runs)} runs: the others "
                         f"did not log {key}")
        grid = common_grid(with_curve, key)
        assert grid is not None  # _left_out checked it
        values = np.stack([np.interp(grid, *r.curves[key]) for r in with_curve])
        mean, low, high = bootstrap_mean_band(values, reps=reps)
        (line,) = ax.plot(grid, mean, label=f"{method} (n={len(with_curve)})")
        ax.fill_between(grid, low, high, alpha=0.25, color=line.get_color(), linewidth=0)
        drawn = True
    if drawn:
        ax.set_title(f"{env}: mean over seeds, 95% bootstrap band")
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def plot_profile(tables: dict[str, list[MethodRow]], path: Path, reps: int,
                 notes: list[str] | None = None) -> str | None:
    """Performance profile of final returns, normalized per env as the aggregate is (best run = 1), of
    the methods with a final score on every env; returns why it was skipped, or None."""
    from hybridpg.experiments.aggregate import normalized_finals, score_matrix
    from hybridpg.experiments.stats import performance_profile

    notes = [] if notes is None else notes
    scores = normalized_finals([row for rows in tables.values() for row in rows], [])  # the aggregate says why
    envs = sorted({env for per_env in scores.values() for env in per_env})
    if not envs:
        return "no finished runs with a supported final column"
    shared = [label for label, per_env in scores.items() if len(per_env) == len(envs)]
    for label, per_env in scores.items():
        if label not in shared:
            missing = [env for env in envs if env not in per_env]
            notes.append(f"plot performance_profile: left out {label}: no final score on {', '.join(missing)}")
    if not shared:
        return "no method has a final score on every env"
    cuts: list[str] = []
    matrices = {label: score_matrix(scores[label], envs, label, cuts) for label in shared}
    notes += [f"plot performance_profile: {note.removeprefix('aggregate: ')}" for note in cuts]
    taus = np.linspace(0.0, 1.0, 51)
    try:
        profiles = performance_profile(matrices, taus, reps=reps)
    except ConfigError as exc:
        return str(exc)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for method, (profile, low, high) in profiles.items():
        (line,) = ax.plot(taus, profile, label=method)
        ax.fill_between(taus, low, high, alpha=0.25, color=line.get_color(), linewidth=0)
    ax.set_title(f"performance profile over {len(envs)} env(s), final return / best run")
    ax.set_xlabel("max-normalized final return tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html_table(rows: list[MethodRow]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
    cells = ("".join(f"<td>{html.escape(c)}</td>" for c in row_cells(r)) for r in rows)
    body = "".join(f"<tr>{c}</tr>" for c in cells)
    return f"<table><tr>{head}</tr>{body}</table>"


def _commands(root: Path, out: Path) -> list[str]:
    commands: list[str] = []
    sweep_file = root / "sweep.yaml"
    if sweep_file.exists():
        commands += list((yaml.safe_load(sweep_file.read_text()) or {}).get("commands", []))
    commands.append(f"hybridpg compare {root} --out {out}")
    return commands


def write_report(root: Path, out: Path, runs: list[RunData], tables: dict[str, list[MethodRow]],
                 reps: int = 2000, *, text: list[str] | None = None, notes: list[str] | None = None) -> Path:
    """Write the PNGs and report.html (images embedded as data URIs) into ``out``. ``text`` (compare's
    notes, aggregate and P(X > Y) lines) goes into the report; what a plot leaves out is appended to
    ``notes`` and goes into the report too."""
    notes = [] if notes is None else notes
    sections = []
    for env, rows in tables.items():
        parts = [f"<h2>{html.escape(env)}</h2>"]
        parts.append(_html_table(rows) if rows else "<p>no finished runs with evaluations</p>")
        methods = {row.method: row.runs for row in rows}
        for key, ylabel, stem in ((EVAL_KEY, "eval return", "learning_curves"),
                                  (SE_KEY, "sampling error", "sampling_error")):
            png = out / f"{stem}_{_slug(env)}.png"
            if methods and plot_curves(env, methods, key, ylabel, png, reps, notes):
                parts.append(_img(png, f"{stem} {env}"))
        configs = {row.method: row.config for row in rows}
        parts.append("<details><summary>configs</summary><pre>"
                     + html.escape(yaml.safe_dump(configs, sort_keys=False)) + "</pre></details>")
        sections.append("\n".join(parts))
    profile_png = out / "performance_profile.png"
    skipped = plot_profile(tables, profile_png, reps=min(reps, 1000), notes=notes)
    if skipped is not None:
        notes.append(f"plot performance_profile: not drawn: {skipped}")
    profile = (_img(profile_png, "performance profile") if skipped is None
               else f"<p>performance profile skipped: {html.escape(skipped)}</p>")
    summary = "\n".join(html.escape(line) for line in [*(text or []), *notes])
    commands = "\n".join(html.escape(c) for c in _commands(root, out))
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hybridpg report: {html.escape(root.name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}pre{{white-space:pre-wrap;overflow-wrap:anywhere}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>hybridpg report: {html.escape(str(root))}</h1>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")}. {len(runs)} run folders. One row per setting (algo, env,
budget and every config field that changes learning); a label names the fields where settings of one algo
differ. IQM with 95% stratified-bootstrap CIs over seeds (rliable, {reps} reps). {html.escape(TABLE_LEGEND)}
Curves: mean over the scored runs with a 95% bootstrap band on the step range they share.</p>
<h2>Reproduce</h2><pre>{commands}</pre>
{"".join(sections)}
<h2>Performance profile</h2>{profile}
<h2>Aggregate over envs, P(X &gt; Y), and what was left out</h2><pre>{summary}</pre>
</body></html>
"""
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
