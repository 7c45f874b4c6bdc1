"""The PROPS paper's RL comparison: PROPS vs PPO-Buffer vs PPO with the authors' per-env settings.

    python benchmarks/props_rl.py run [--envs Hopper-v5,...] [--seeds 10] [--workers 2]
    python benchmarks/props_rl.py report
    hybridpg sweep --spec benchmarks/specs/props_rl_control.yaml --out runs/props_rl_control
    python benchmarks/props_rl.py control

``run`` is ``hybridpg sweep --spec props-paper`` with the runs ordered seed by seed over envs (so that a
partial sweep holds every method for the seeds it has), restartable like any sweep; it trains in a
scratch folder (runs/props_rl). ``report`` copies each finished run's config, summary and eval/SE
records to benchmarks/results/props_rl/runs (committed: a later ``run`` counts them as done), then
writes the raw per-run curves (JSON), the figure, and the summary from them:
per-env IQM of the final return and of the AUC with 95% stratified-bootstrap CIs, the aggregate
curve (IQM of max-normalized return at 11 budget fractions, pooled over envs), the probability of
improvement of PROPS over each baseline, and each method's live sampling error over training.
Only envs where every method has the same seeds finished enter the aggregate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hybridpg.experiments.records import EVAL_KEY, SE_KEY, RunData, load_runs
from hybridpg.experiments.runs import SweepProgress, run_state
from hybridpg.experiments.spec_file import load_spec, parse_seeds
from hybridpg.experiments.stats import aggregate_with_ci, per_env_iqm_with_ci, probability_of_improvement
from hybridpg.experiments.sweep import SweepSpec, run_local, write_sweep_file

ROOT = Path("runs/props_rl")
OUT = Path("benchmarks/results/props_rl")
FRACTIONS = np.linspace(0.0, 1.0, 11)
METHODS = ("props", "ppo-buffer", "ppo")


RAW = OUT / "runs"  # finished runs, kept small (config, summary, eval and SE records) and committed


def harvest(root: Path, raw: Path = RAW) -> int:
    """Copy each finished run's config, summary and eval/SE records from the scratch ``root`` to ``raw``."""
    count = 0
    for summary in sorted(root.rglob("summary.json")):
        run = summary.parent
        if run_state(run) != "finished" or ".ray" in run.parts:
            continue
        target = raw / run.relative_to(root)
        if (target / "summary.json").exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / "config.yaml", target / "config.yaml")
        kept = [line for line in (run / "metrics.jsonl").read_text().splitlines()
                if '"eval/' in line or '"diagnostics/' in line]
        (target / "metrics.jsonl").write_text("".join(line + "\n" for line in kept))
        shutil.copy2(summary, target / "summary.json")  # last, so a half-copied run is not 'finished'
        count += 1
    return count


def _restore(raw: Path, root: Path) -> None:
    """Runs finished earlier (and committed) count as done in the scratch root, so they are skipped."""
    for summary in sorted(raw.rglob("summary.json")):
        target = root / summary.parent.relative_to(raw)
        if not target.exists():
            shutil.copytree(summary.parent, target)


def cmd_run(args: argparse.Namespace) -> int:
    spec_file = load_spec(args.spec)
    _restore(RAW, args.root)
    envs = args.envs.split(",") if args.envs else spec_file.envs
    unknown = [env for env in envs if env not in spec_file.envs]
    if unknown:
        print(f"error: {unknown[0]} is not in the spec's envs", file=sys.stderr)
        return 2
    seeds = parse_seeds(args.seeds) if args.seeds else spec_file.seeds
    sweep = SweepSpec(spec_file.algos, envs, seeds, 0, {}, args.root.resolve(), workers=args.workers,
                      spec_file=spec_file)
    write_sweep_file(sweep)
    by_key = {(run.env, run.algo, run.seed): run for run in sweep.runs()}
    ordered = [by_key[(env, algo, seed)] for seed in seeds for env in envs for algo in spec_file.algos]
    todo = [run for run in ordered if run_state(Path(run.run_dir)) != "finished"]
    print(f"$ {sweep.command()}  ({len(todo)} of {len(ordered)} runs to do)", flush=True)
    progress = SweepProgress(len(todo))
    run_local(todo, args.workers, progress)
    progress.close()
    return 1 if progress.failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Each method's n and lr on seeds the benchmark never reports; prints and saves AUC per setting."""
    import itertools

    spec_file = load_spec(args.spec)
    seeds = parse_seeds(args.seeds)
    if set(seeds) & set(spec_file.seeds):
        print("error: tuning seeds must not be among the spec's reported seeds", file=sys.stderr)
        return 2
    grid = [dict(zip(("n_steps", "learning_rate"), combo, strict=True))
            for combo in itertools.product(args.n_steps, args.learning_rates)]
    runs, setting_of = [], {}
    for combo in grid:
        name = f"n{combo['n_steps']}-lr{combo['learning_rate']:g}"
        overrides = {**combo, "behavior_steps": combo["n_steps"] // 4}  # PROPS's m = n/4, as on Hopper's 2048/256
        sweep = SweepSpec(spec_file.algos, [args.env], seeds, 0, overrides, (args.root / name).resolve(),
                          spec_file=spec_file)
        for run in sweep.runs():
            runs.append(run)
            setting_of[run.run_dir] = name
    todo = [run for run in runs if run_state(Path(run.run_dir)) != "finished"]
    progress = SweepProgress(len(todo))
    run_local(todo, args.workers, progress)
    progress.close()
    table: dict[str, dict[str, list[float]]] = {}
    for run in load_runs(args.root):
        if run.finished and EVAL_KEY in run.curves and run.env == args.env:
            name = setting_of.get(str(run.path.resolve()))
            if name is not None:
                table.setdefault(run.algo, {}).setdefault(name, []).append(run.auc())
    chosen = {}
    for algo, by_setting in sorted(table.items()):
        means = {name: float(np.mean(v)) for name, v in by_setting.items()}
        chosen[algo] = max(means, key=lambda k: means[k])
        print(f"{algo}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(means.items())) + f" -> {chosen[algo]}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"tuning_{args.env}.json").write_text(json.dumps(
        {"env": args.env, "seeds": seeds, "metric": "time-averaged eval return over the budget (AUC)",
         "results": table, "chosen": chosen}, indent=1))
    return 1 if progress.failed else 0


# -- report -----------------------------------------------------------------------------------------


def _complete(runs: list[RunData]) -> dict[str, dict[str, dict[int, RunData]]]:
    """{env: {algo: {seed: run}}} of finished runs, cut to the seeds every method has."""
    table: dict[str, dict[str, dict[int, RunData]]] = {}
    for run in runs:
        if run.finished and EVAL_KEY in run.curves:
            table.setdefault(run.env, {}).setdefault(run.algo, {})[run.seed] = run
    out = {}
    for env, by_algo in table.items():
        if set(by_algo) != set(METHODS):
            continue
        common = set.intersection(*(set(s) for s in by_algo.values()))
        if len(common) >= 2:
            out[env] = {algo: {seed: by_algo[algo][seed] for seed in sorted(common)} for algo in METHODS}
    return out


def _curve_at(run: RunData, fractions: np.ndarray) -> np.ndarray:
    steps, values = run.curves[EVAL_KEY]
    return np.interp(fractions * run.total_timesteps, steps, values)


def _se_series(run: RunData) -> tuple[np.ndarray, np.ndarray] | None:
    return run.curves.get(SE_KEY)


def _mean_ci(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(reps, len(values)), replace=True).mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def cmd_report(args: argparse.Namespace) -> int:
    if args.root.is_dir():
        print(f"{harvest(args.root)} newly finished run(s) copied to {RAW}")
    complete = _complete(load_runs(RAW))
    if not complete:
        print("error: no env has finished runs of every method yet", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {"envs": {}}
    lines = ["| env (budget, seeds) | method | final return IQM [95% CI] | AUC IQM [95% CI] | "
             "live SE mean [95% CI] | SE first half | SE second half |", "|---|---|---|---|---|---|---|"]
    curves: dict[str, dict[str, np.ndarray]] = {}  # env -> algo -> (seeds, fractions) raw returns
    finals: dict[str, dict[str, np.ndarray]] = {}
    se_means: dict[str, dict[str, float]] = {}
    for env, by_algo in complete.items():
        raw["envs"][env] = {}
        curves[env], finals[env], se_means[env] = {}, {}, {}
        for algo, by_seed in by_algo.items():
            runs = list(by_seed.values())
            final = np.array([r.final_return() for r in runs])
            auc = np.array([r.auc() for r in runs])  # the time-averaged eval return
            curves[env][algo] = np.stack([_curve_at(r, FRACTIONS) for r in runs])
            finals[env][algo] = final
            se_all, se_early, se_late = [], [], []
            for r in runs:
                series = _se_series(r)
                if series is None:
                    continue
                steps, values = series
                se_all.append(values.mean())
                half = steps <= r.total_timesteps / 2
                se_early.append(values[half].mean() if half.any() else np.nan)
                se_late.append(values[~half].mean() if (~half).any() else np.nan)
            f_est, a_est = per_env_iqm_with_ci(final), per_env_iqm_with_ci(auc)
            se_text = early_text = late_text = "n/a"
            if se_all:
                mean, lo, hi = _mean_ci(np.array(se_all))
                se_means[env][algo] = mean
                se_text = f"{mean:.4f} [{lo:.4f}, {hi:.4f}]"
                early_text, late_text = f"{np.nanmean(se_early):.4f}", f"{np.nanmean(se_late):.4f}"
            budget = runs[0].total_timesteps
            lines.append(f"| {env} ({budget // 1000}k, {len(runs)}) | {algo} | {f_est.point:.1f} "
                         f"[{f_est.low:.1f}, {f_est.high:.1f}] | {a_est.point:.1f} [{a_est.low:.1f}, "
                         f"{a_est.high:.1f}] | {se_text} | {early_text} | {late_text} |")
            raw["envs"][env][algo] = {
                str(r.seed): {
                    "eval_steps": r.curves[EVAL_KEY][0].tolist(), "eval_returns": r.curves[EVAL_KEY][1].tolist(),
                    "se_steps": r.curves[SE_KEY][0].tolist() if SE_KEY in r.curves else [],
                    "se": r.curves[SE_KEY][1].tolist() if SE_KEY in r.curves else [],
                    "total_timesteps": r.total_timesteps, "sps": r.sps, "config": r.config,
                } for r in runs
            }
    # max-normalization per env over every method, seed and budget point, then IQM pooled over the
    # envs that have the most seeds (a stratified bootstrap needs the same runs in every env)
    n_seeds = max(len(s) for by_algo in complete.values() for s in by_algo.values())
    pooled = [env for env, by_algo in complete.items() if min(len(s) for s in by_algo.values()) >= n_seeds]
    norm = {}
    for env in pooled:
        top = max(float(c.max()) for c in curves[env].values())
        low = min(float(c.min()) for c in curves[env].values())
        norm[env] = {algo: (c[:n_seeds] - low) / max(top - low, 1e-12) for algo, c in curves[env].items()}
    envs = sorted(norm)
    aggregate = {}
    for i, fraction in enumerate(FRACTIONS):
        scores = {algo: np.stack([norm[env][algo][:, i] for env in envs], axis=1) for algo in METHODS}
        aggregate[f"{fraction:.1f}"] = {algo: est["iqm"] for algo, est in aggregate_with_ci(scores, ("iqm",)).items()}
    at30 = {algo: np.stack([norm[env][algo][:, 3] for env in envs], axis=1) for algo in METHODS}
    at100 = {algo: np.stack([norm[env][algo][:, -1] for env in envs], axis=1) for algo in METHODS}
    poi = {f"props>{base}@{label}": probability_of_improvement(scores["props"], scores[base])
           for base in ("ppo", "ppo-buffer") for label, scores in (("30%", at30), ("100%", at100))}

    left_out = sorted(set(complete) - set(pooled))
    lines += ["", f"Aggregate over {', '.join(envs)} ({n_seeds} seeds each): IQM of max-normalized return"
              + (f"; not pooled (fewer seeds finished): {', '.join(left_out)}" if left_out else ""),
              "", "| budget | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for key, row in aggregate.items():
        lines.append(f"| {float(key):.0%} | " + " | ".join(str(row[a]) for a in METHODS) + " |")
    ratio30 = aggregate["0.3"]["props"].point / max(aggregate["0.3"]["ppo"].point, 1e-12)
    lines += ["", f"PROPS / PPO aggregate IQM at 30% of the budget: {ratio30:.2f}x (goal >= 1.1x)", ""]
    for key, est in poi.items():
        lines.append(f"P({key.split('@')[0].replace('>', ' > ')}) at {key.split('@')[1]}: {est}")
    lines.append("")
    for env in envs:
        if "props" in se_means[env] and "ppo-buffer" in se_means[env]:
            ratio = se_means[env]["props"] / se_means[env]["ppo-buffer"]
            lines.append(f"{env}: PROPS live SE / PPO-Buffer's = {ratio:.2f}x (goal <= 0.7x)")
    text = "\n".join(lines)
    raw["aggregate"] = {k: {a: [e.point, e.low, e.high] for a, e in row.items()} for k, row in aggregate.items()}
    raw["probability_of_improvement"] = {k: [e.point, e.low, e.high] for k, e in poi.items()}
    (args.out / "results.json").write_text(json.dumps(raw))
    (args.out / "summary.md").write_text(text + "\n")
    _figure(aggregate, complete, args.out / "props_rl.png")
    print(text)
    return 0


def _figure(aggregate: dict[str, dict[str, Any]], complete: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted(complete)
    fig, axes = plt.subplots(1, 1 + len(envs), figsize=(4.2 * (1 + len(envs)), 3.4))
    ax = axes[0]
    for algo in METHODS:
        est = [aggregate[f"{f:.1f}"][algo] for f in FRACTIONS]
        ax.plot(FRACTIONS, [e.point for e in est], label=algo)
        ax.fill_between(FRACTIONS, [e.low for e in est], [e.high for e in est], alpha=0.2)
    ax.set(title="IQM max-normalized return", xlabel="fraction of budget", ylim=(0, 1))
    ax.legend()
    for ax, env in zip(axes[1:], envs, strict=True):
        for algo in METHODS:
            series = [r.curves[SE_KEY] for r in complete[env][algo].values() if SE_KEY in r.curves]
            if not series:
                continue
            grid = np.linspace(0, max(s[0].max() for s in series), 20)
            values = np.stack([np.interp(grid, s[0], s[1]) for s in series])
            ax.plot(grid, values.mean(0), label=algo)
        ax.set(title=f"{env}: live sampling error", xlabel="env steps", yscale="log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


CONTROL_ROOT = Path("runs/props_rl_control")
CONTROL_RAW = OUT / "control" / "runs"


def cmd_control(args: argparse.Namespace) -> int:
    """Live SE of PROPS vs PPO-Buffer run with exactly PROPS's settings (the control spec), on the
    control's seeds and steps: the ratio then measures the behavior policy alone."""
    if args.root.is_dir():
        print(f"{harvest(args.root, CONTROL_RAW)} newly finished control run(s) copied to {CONTROL_RAW}")
    control = [r for r in load_runs(CONTROL_RAW) if r.finished and SE_KEY in r.curves]
    props = {(r.env, r.seed): r for r in load_runs(RAW) if r.algo == "props" and SE_KEY in r.curves}
    rows, lines = {}, ["| env | seeds | steps | PROPS live SE [95% CI] | PPO-Buffer, PROPS's settings [95% CI] "
                       "| ratio [95% CI] | ratio 1st half | ratio 2nd half |", "|---|---|---|---|---|---|---|---|"]
    for env in sorted({r.env for r in control}):
        pairs = [(props[(env, r.seed)], r) for r in control if r.env == env and (env, r.seed) in props]
        if len(pairs) < 2:
            continue
        budget = min(r.total_timesteps for _, r in pairs)

        def mean_se(run: RunData, part: str, budget: int = budget) -> float:
            steps, values = run.curves[SE_KEY]
            keep = steps <= budget
            half = steps[keep] < budget / 2
            chosen = {"all": np.ones_like(half), "first": half, "second": ~half}[part]
            return float(values[keep][chosen].mean())

        ratio = {part: np.array([mean_se(p, part) / mean_se(c, part) for p, c in pairs])
                 for part in ("all", "first", "second")}
        p_mean = _mean_ci(np.array([mean_se(p, "all") for p, _ in pairs]))
        c_mean = _mean_ci(np.array([mean_se(c, "all") for _, c in pairs]))
        r_mean = _mean_ci(ratio["all"])
        rows[env] = {"seeds": [c.seed for _, c in pairs], "steps": budget, "props_se": p_mean, "control_se": c_mean,
                     "ratio": r_mean, "ratio_first_half": float(ratio["first"].mean()),
                     "ratio_second_half": float(ratio["second"].mean())}
        fmt = "{:.4f} [{:.4f}, {:.4f}]".format
        lines.append(f"| {env} | {len(pairs)} | {budget // 1000}k | {fmt(*p_mean)} | {fmt(*c_mean)} "
                     f"| {r_mean[0]:.2f}x [{r_mean[1]:.2f}, {r_mean[2]:.2f}] | {rows[env]['ratio_first_half']:.2f}x "
                     f"| {rows[env]['ratio_second_half']:.2f}x |")
    if not rows:
        print("error: no control runs with a PROPS run of the same env and seed", file=sys.stderr)
        return 2
    (OUT / "control" / "control.json").write_text(json.dumps(rows, indent=1))
    (OUT / "control" / "control.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the runs (restartable)")
    run.add_argument("--spec", default="props-paper")
    run.add_argument("--envs", default=None, help="comma-separated subset of the spec's envs, in this order")
    run.add_argument("--seeds", default=None, help="default: the spec's")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--root", type=Path, default=ROOT)
    tune = sub.add_parser("tune", help="choose n and lr per method on seeds that are not reported")
    tune.add_argument("--spec", default="props-paper")
    tune.add_argument("--env", default="CartPole-v1")
    tune.add_argument("--seeds", default="100-102")
    tune.add_argument("--n-steps", type=int, nargs="+", default=[512, 1024])
    tune.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-4])
    tune.add_argument("--workers", type=int, default=1)
    tune.add_argument("--root", type=Path, default=Path("runs/props_rl_tune"))
    tune.add_argument("--out", type=Path, default=OUT)
    control = sub.add_parser("control", help="PROPS's live SE against PPO-Buffer with PROPS's settings")
    control.add_argument("--root", type=Path, default=CONTROL_ROOT)
    report = sub.add_parser("report", help="statistics, raw JSON and the figure")
    report.add_argument("--root", type=Path, default=ROOT)
    report.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    return {"run": cmd_run, "tune": cmd_tune, "control": cmd_control, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
