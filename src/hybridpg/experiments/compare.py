"""``hybridpg compare ROOT``: read a sweep's run folders and compare methods with honest statistics.

One row per setting (:mod:`hybridpg.experiments.grouping`: algo, env, budget and every config field
that changes learning), over its finished runs (seeds): the IQM with a 95% stratified-bootstrap CI
(:mod:`hybridpg.experiments.stats`, rliable) of the final eval return (mean of the last 3 evals in the second
half of the budget),
of the eval return at 30% of the budget, and of the normalized area under the eval curve, each n/a
where the evaluations cannot support it (:mod:`hybridpg.experiments.columns`); plus the mean final
return, the sampling error (where ``diagnostics/sampling_error`` was logged) and SPS. Then the IQM
of normalized final returns over envs per method, and P(X > Y) for each pair of methods
(:mod:`hybridpg.experiments.aggregate`). Whatever a row, cell, plot or aggregate leaves out is
printed with the reason. The plots and the HTML report are made by :mod:`hybridpg.experiments.report`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from hybridpg.errors import ConfigError
from hybridpg.experiments.aggregate import aggregate_over_envs
from hybridpg.experiments.grouping import group_settings
from hybridpg.experiments.records import EVAL_KEY, SE_KEY, RunData, load_run, load_runs  # noqa: F401 (public names)
from hybridpg.experiments.table import (  # noqa: F401 (the public names of compare's tables)
    TABLE_LEGEND,
    MethodRow,
    env_rows,
    format_table,
    group,
    method_rows,
)


def compare(root: Path, out: Path | None = None, reps: int = 2000, stream: Any = None) -> Path:
    """Print the per-env tables, what they leave out, the aggregate over envs and P(X > Y), and write
    plots and report.html to ``out`` (default ROOT/report)."""
    from hybridpg.experiments.report import write_report

    stream = stream or sys.stdout
    root = root.resolve()
    out = (out or root / "report").resolve()
    runs = load_runs(root)
    tables: dict[str, list[MethodRow]] = {}
    notes: list[str] = []  # what a row or cell leaves out, repeated in the report
    for env, settings in group_settings(runs).items():
        tables[env], env_notes = env_rows(settings, reps=reps)
        if tables[env]:
            print(format_table(env, tables[env]), file=stream)
        else:
            print(f"== {env} ==\n(no finished runs with evaluations)", file=stream)
        for line in env_notes:
            print(line, file=stream)
        notes += env_notes
    print(textwrap.fill(TABLE_LEGEND, width=110), file=stream)
    summary = aggregate_over_envs([row for rows in tables.values() for row in rows], reps=reps).lines()
    for line in summary:
        print(line, file=stream)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to {out}: {exc.strerror or exc}") from None
    plot_notes: list[str] = []
    report = write_report(root, out, runs, tables, reps=reps, text=notes + summary, notes=plot_notes)
    for line in plot_notes:
        print(line, file=stream)
    print(f"report: {report}", file=stream)
    return report


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare the methods of a sweep: IQM [95%% CI] tables, plots, report.html",
        description="Read every run folder under ROOT and compare methods per env.",
    )
    parser.add_argument("root", type=Path, help="sweep root (or any folder holding run folders)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: ROOT/report)")
    parser.add_argument(
        "--reps", type=int, default=2000, help="bootstrap replications (default: %(default)s)",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.reps < 10:
        raise ConfigError(f"--reps={args.reps}: need at least 10 bootstrap replications")
    compare(args.root, args.out, reps=args.reps)
    return 0
