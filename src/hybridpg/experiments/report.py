"""Plots (learning curves, sampling error, performance profile) and a self-contained report.html.

Curve bands: the mean over seeds at each point of a common step grid, with a 95% percentile
bootstrap band over seeds. The bootstrap is vectorized here because calling rliable once per grid
point (tens of points x methods x envs, ~0.25 s each) would make ``compare`` take minutes; the
headline numbers (tables, performance profile) use :mod:`hybridpg.stats`, i.e. rliable.
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
from hybridpg.experiments.records import EVAL_KEY, SE_KEY, TABLE_HEADER, RunData, group, row_cells

if TYPE_CHECKING:
    from hybridpg.experiments.records import MethodRow

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


def plot_curves(env: str, methods: dict[str, list[RunData]], key: str, ylabel: str, path: Path,
                reps: int) -> bool:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = False
    for method, runs in methods.items():
        with_curve = [r for r in runs if key in r.curves]
        grid = common_grid(with_curve, key)
        if grid is None:
            continue
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


def plot_profile(runs: list[RunData], path: Path, reps: int) -> str | None:
    """Performance profile of final returns, max-normalized per env; returns why it was skipped, or None."""
    from hybridpg.stats import normalize, performance_profile

    by_env = group([r for r in runs if r.finished and EVAL_KEY in r.curves])
    if not by_env:
        return "no finished runs"
    shared = set.intersection(*(set(m) for m in by_env.values()))
    if not shared:
        return "no method was run on every env"
    scores = {env: {m: np.array([r.final_return() for r in rs]) for m, rs in methods.items() if m in shared}
              for env, methods in by_env.items()}
    # returns can be negative: shift each env by its worst run so that worst = 0 and best = 1
    lows = {env: min(float(v.min()) for v in ms.values()) for env, ms in scores.items()}
    lows = {env: min(low, 0.0) for env, low in lows.items()}
    try:
        normalized = normalize(scores, ref="max", low=lows)
        taus = np.linspace(0.0, 1.0, 51)
        profiles = performance_profile(normalized, taus, reps=reps)
    except ConfigError as exc:
        return str(exc)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for method, (profile, low, high) in profiles.items():
        (line,) = ax.plot(taus, profile, label=method)
        ax.fill_between(taus, low, high, alpha=0.25, color=line.get_color(), linewidth=0)
    ax.set_title(f"performance profile over {len(scores)} env(s), final return / best run")
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
                 reps: int = 2000) -> Path:
    """Write the PNGs and report.html (images embedded as data URIs) into ``out``."""
    sections = []
    for env, methods in group(runs).items():
        parts = [f"<h2>{html.escape(env)}</h2>"]
        parts.append(_html_table(tables.get(env, [])) if tables.get(env) else "<p>no finished runs</p>")
        for key, ylabel, stem in ((EVAL_KEY, "eval return", "learning_curves"),
                                  (SE_KEY, "sampling error", "sampling_error")):
            png = out / f"{stem}_{_slug(env)}.png"
            if plot_curves(env, methods, key, ylabel, png, reps):
                parts.append(_img(png, f"{stem} {env}"))
        configs = {m: rs[0].config for m, rs in methods.items()}
        parts.append("<details><summary>configs</summary><pre>"
                     + html.escape(yaml.safe_dump(configs, sort_keys=False)) + "</pre></details>")
        sections.append("\n".join(parts))
    profile_png = out / "performance_profile.png"
    skipped = plot_profile(runs, profile_png, reps=min(reps, 1000))
    profile = (_img(profile_png, "performance profile") if skipped is None
               else f"<p>performance profile skipped: {html.escape(skipped)}</p>")
    commands = "\n".join(html.escape(c) for c in _commands(root, out))
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hybridpg report: {html.escape(root.name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>hybridpg report: {html.escape(str(root))}</h1>
<p>Generated {time.strftime("%Y-%m-%d %H:%M:%S")}. {len(runs)} run folders. Final = mean of the last 3 evals;
IQM with 95% stratified-bootstrap CIs over seeds (rliable, {reps} reps); @30% = eval return at 30% of the
budget; AUC = area under the eval curve divided by its step span. Curves: mean over seeds with a 95% bootstrap
band on a common step grid.</p>
<h2>Reproduce</h2><pre>{commands}</pre>
{"".join(sections)}
<h2>Performance profile</h2>{profile}
</body></html>
"""
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
