"""Learning with ``compile=True`` (each minibatch step one torch.compile graph) against the eager default.

The eager runs are the PROPS RL comparison's (benchmarks/results/props_rl/runs, the authors'
settings, 200k steps on Hopper-v5); ``run`` trains the same seeds from the same config.yaml with
``compile=True`` set, one ordinary single run per seed, one after another in this process on one
thread, and ``report`` compares the final evaluation returns seed by seed and as IQMs with 95%
bootstrap CIs, plus P(compiled > eager). A compiled step equals the eager one up to float
summation order, so single evaluations drift apart as chaotic training amplifies rounding; the
claim is that the distributions of returns agree. Wall times are recorded but are no speed
comparison: the eager runs were trained at another time, under another load.

    python benchmarks/compile_learning.py run [--env Hopper-v5] [--algo props] [--seeds 0-9]
    python benchmarks/compile_learning.py control [--env Hopper-v5] [--algo props] [--seeds 0-9]
    python benchmarks/compile_learning.py report [--env Hopper-v5] [--algo props]

``control`` trains the same seeds eagerly with today's code (the stored eager runs are older code),
and ``report`` adds them when all are there. ``props-only`` and ``ppo-only`` train the same seeds with
only one kind of step compiled (PROPS's behavior step, or PPO's step), to tell which one carries a
difference between the compiled runs and the control:

    python benchmarks/compile_learning.py props-only|ppo-only [--seeds 0-9]

``f64-compiled`` and ``f64-eager`` train the same seeds both ways with every network, optimizer
state and stored per-sample column in float64 (the library has no dtype switch: the process sets
torch's default dtype and casts the networks' inputs). If the float32 gap comes from rounding,
the two float64 arms meet; which float32 arm they land near tells which path's rounding moves
learning. The sampling-error diagnostic is off in these arms (it casts to float32 and feeds
nothing back into training):

    python benchmarks/compile_learning.py f64-compiled|f64-eager [--seeds 0-9]

``graph-eager`` trains the same seeds through the compiled step's own function run eagerly, without
torch.compile (``torch.func.grad``, the in-graph clip and Adam formula, on ATen's kernels): where
its learning lands tells whether a gap between the compiled runs and the control comes with the
step's formulation or with inductor's kernels:

    python benchmarks/compile_learning.py graph-eager [--seeds 0-9]

``divergence`` reads the full metrics of the runs trained here (the scratch folders under runs/)
and reports, per seed, the first PPO update after which the compiled run's policy entropy differs
from the control's by more than 1e-4 (when one path's rounding has sent the two onto different
trajectories), and each arm's mean entropy over the first PPO updates:

    python benchmarks/compile_learning.py divergence

``arms`` tabulates every arm trained for one env and algorithm (on the given seeds, or all) against
the control: IQM final return, runs ending above a threshold (Hopper's runs end stuck near 1000 or
hopping above 3000), and on the seeds both ran, P(arm > control) and Fisher's exact test:

    python benchmarks/compile_learning.py arms [--algo props] [--seeds 30-44] [--threshold 2500]
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
import torch
import yaml
from _results import learning_check_main  # benchmarks/_results.py

from hybridpg import gradient_step
from hybridpg.algorithms import ALGORITHMS, onpolicy
from hybridpg.algorithms.base import Agent
from hybridpg.algorithms.ppo_loss import ppo_minibatch_loss
from hybridpg.algorithms.props import props_minibatch_loss
from hybridpg.experiments.runs import run_state
from hybridpg.experiments.stats import per_env_iqm_with_ci, probability_of_improvement

EAGER = Path("benchmarks/results/props_rl/runs")
SCRATCH = Path("runs/compile_learning")
OUT = Path("benchmarks/results/compile_learning")


def train_seed(env: str, algo: str, seed: int, run_dir: Path, total: int | None = None,
               compiled: bool = True, **overrides: Any) -> float | None:
    """Train (or resume) one run, compiled or (the control) eager; its wall seconds, or None when it
    had already finished."""
    state = run_state(run_dir)
    if state == "finished":
        return None
    start = time.perf_counter()
    if state == "resume":
        agent = Agent.load(run_dir / "checkpoints" / "latest.pt")
        if getattr(agent.config, "compile", False) != compiled:
            agent.close()
            raise SystemExit(f"{run_dir} holds a run with compile={not compiled}; delete it and rerun")
        horizon = int(yaml.safe_load((run_dir / "config.yaml").read_text())["total_timesteps"])
        remaining = horizon - agent.global_step
    else:
        if run_dir.exists():  # a dead attempt without a checkpoint: start clean
            shutil.rmtree(run_dir)
        stored = EAGER / env / algo / f"seed{seed}" / "config.yaml"
        if not stored.exists():  # a seed the stored runs lack: seed 0's settings, this seed
            stored = EAGER / env / algo / "seed0" / "config.yaml"
        doc = yaml.safe_load(stored.read_text())
        if doc["env"] != env or doc["algo"] != algo:
            raise SystemExit(f"{stored}: config.yaml is for another run")
        config = dataclasses.replace(ALGORITHMS[algo].config_cls.from_saved(doc["config"]), compile=compiled,
                                     **overrides)
        agent = ALGORITHMS[algo](env, seed=seed, config=config)
        remaining = int(doc["total_timesteps"]) if total is None else total
    try:
        if remaining < 1:  # stopped after its last checkpoint, before summary.json
            agent.finish_run(run_dir, progress=False)
        else:
            agent.learn(remaining, run_dir=run_dir, progress=False, reset=state != "resume")
    finally:
        agent.close()
    return time.perf_counter() - start


def keep_records(run_dir: Path, target: Path) -> None:
    """Copy the small records of a finished run: config, the eval lines of metrics, summary."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / "config.yaml", target / "config.yaml")
    evals = [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval/' in line]
    (target / "metrics.jsonl").write_text("".join(line + "\n" for line in evals))
    shutil.copy2(run_dir / "summary.json", target / "summary.json")  # last: marks the copy complete


def compile_only(kind: str) -> None:
    """From now on in this process, compile only one kind of minibatch step ("props" or "ppo")."""
    keep = {"props": props_minibatch_loss, "ppo": ppo_minibatch_loss}[kind]
    build = gradient_step.GradientStep.__init__

    def init(self: gradient_step.GradientStep, loss_fn: Any, *args: Any, **kwargs: Any) -> None:
        build(self, loss_fn, *args, **kwargs)
        self.compile = self.compile and loss_fn is keep

    gradient_step.GradientStep.__init__ = init  # type: ignore[method-assign]


def in_float64() -> None:
    """From now on in this process, train in float64: new tensors default to it, every module's
    float32 inputs are cast up, and the on-policy buffer's columns are built in float64."""
    torch.set_default_dtype(torch.float64)

    def cast_inputs(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        del module
        return tuple(a.double() if isinstance(a, torch.Tensor) and a.dtype == torch.float32 else a for a in args)

    torch.nn.modules.module.register_module_forward_pre_hook(cast_inputs)
    # onpolicy.py builds its tensors with ``.astype(np.float32)``: give it a numpy whose float32 is float64
    wide = types.ModuleType("numpy_float64")
    wide.__dict__.update(np.__dict__)
    wide.float32 = np.float64  # type: ignore[attr-defined]
    onpolicy.np = wide  # type: ignore[attr-defined]


def graph_uncompiled() -> None:
    """From now on in this process, steps with ``compile=True`` run the compiled step's function eagerly."""
    def call(fn: Any, *args: Any, cpp_wrapper: bool = False) -> Any:
        del cpp_wrapper  # an option of the compiled call alone
        return fn(*args)

    gradient_step.compiled_call = call  # type: ignore[assignment]


def arm_folders(arm: str, scratch: Path = SCRATCH, out: Path = OUT) -> tuple[Path, Path]:
    """Where an arm trains (its scratch folder, full metrics) and where it keeps its records: "compiled"
    is the main arm, "control" the eager one; the others are named as their records' folders."""
    if arm == "compiled":
        return scratch, out
    suffix, kept = ("eager", "eager_now") if arm == "control" else (arm, arm)
    return scratch.with_name(f"{scratch.name}_{suffix}"), out / kept


def run(env: str, algo: str, seeds: list[int], *, total: int | None = None, scratch: Path = SCRATCH,
        out: Path = OUT, compiled: bool = True, only: str | None = None, float64: bool = False,
        graph_eager: bool = False) -> None:
    """Train each seed with compile=True (``total`` overrides the saved step budget, for a quick
    check) and keep its records under ``out``; ``compiled=False`` trains the control instead: the
    same seeds eagerly with today's code, under ``out / "eager_now"``; ``only`` ("props" or "ppo")
    compiles one kind of step, under ``out / "<only>_only"``; ``float64`` trains in float64, under
    ``out / "f64_compiled"`` or ``out / "f64_eager"``; ``graph_eager`` runs the compiled step's
    function without compiling it, under ``out / "graph_eager"``."""
    torch.set_num_threads(1)
    overrides: dict[str, Any] = {}
    arm = "compiled"
    if float64:
        in_float64()
        overrides["se_freq"] = 0
        arm = "f64_compiled" if compiled else "f64_eager"
    elif graph_eager:
        graph_uncompiled()
        arm = "graph_eager"
    elif not compiled:
        arm = "control"
    elif only is not None:
        compile_only(only)
        arm = f"{only}_only"
    scratch, out = arm_folders(arm, scratch, out)
    for seed in seeds:
        run_dir = scratch / env / algo / f"seed{seed}"
        seconds = train_seed(env, algo, seed, run_dir, total, compiled, **overrides)
        if seconds is None:
            print(f"seed {seed}: already finished, skipped", flush=True)
        else:
            ret = json.loads((run_dir / "summary.json").read_text()).get("eval_return_mean")
            print(f"seed {seed}: {seconds:.0f} s wall, final eval return {ret:.1f}", flush=True)
        keep_records(run_dir, out / "runs" / env / algo / run_dir.name)


def _evals(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(int(r["step"]), float(r["eval/return_mean"])) for r in rows if "eval/return_mean" in r]


def _wall(run_dir: Path) -> float:
    return float(json.loads((run_dir / "summary.json").read_text())["wall_seconds"])


def _estimate(values: list[float]) -> dict[str, Any]:
    est = per_env_iqm_with_ci(np.asarray(values))
    return {"iqm": est.point, "low": est.low, "high": est.high, "mean": float(np.mean(values)), "n": len(values)}


def _finals(root: Path) -> dict[int, float]:
    """Each finished seed's final evaluation return under ``root``, by seed number (not folder name,
    which puts seed10 before seed2)."""
    finals = {int(d.name[4:]): _evals(d)[-1][1] for d in root.glob("seed*") if (d / "summary.json").exists()}
    return dict(sorted(finals.items()))


def _finals_with_control(arm_root: Path, control_root: Path) -> tuple[list[int], list[float], list[float]]:
    """The seeds finished in both ``arm_root`` and the control, and each side's final returns on them."""
    ours, theirs = _finals(arm_root), _finals(control_root)
    common = [k for k in ours if k in theirs]
    return common, [ours[k] for k in common], [theirs[k] for k in common]


def report(env: str, algo: str, *, out: Path = OUT) -> None:
    compiled_root, eager_root = out / "runs" / env / algo, EAGER / env / algo
    seeds = sorted(int(d.name[4:]) for d in compiled_root.glob("seed*")
                   if (d / "summary.json").exists() and (eager_root / d.name / "summary.json").exists())
    if not seeds:
        raise SystemExit(f"no seed finished in both {compiled_root} and {eager_root}")
    lines = [f"# {algo} on {env}: compile=True vs eager (final evaluation return)", "",
             "| seed | eager: final eval | compiled: final eval | compiled: wall s |", "|---|---|---|---|"]
    finals: dict[str, list[float]] = {"eager": [], "compiled": []}
    rows = []
    for seed in seeds:
        eager_dir, compiled_dir = eager_root / f"seed{seed}", compiled_root / f"seed{seed}"
        eager, compiled = _evals(eager_dir)[-1], _evals(compiled_dir)[-1]
        finals["eager"].append(eager[1])
        finals["compiled"].append(compiled[1])
        rows.append({"seed": seed, "eager_final": eager[1], "eager_final_step": eager[0],
                     "compiled_final": compiled[1], "compiled_final_step": compiled[0],
                     "eager_wall_seconds": _wall(eager_dir), "compiled_wall_seconds": _wall(compiled_dir)})
        lines.append(f"| {seed} | {eager[1]:.1f} | {compiled[1]:.1f} | {_wall(compiled_dir):.0f} |")
    lines.append("")
    estimates = {name: _estimate(values) for name, values in finals.items()}
    for name, est in estimates.items():
        lines.append(f"- {name}: IQM of the final return {est['iqm']:.1f} [{est['low']:.1f}, {est['high']:.1f}] "
                     f"(mean {est['mean']:.1f}, n={est['n']})")
    poi = probability_of_improvement(np.asarray(finals["compiled"])[:, None], np.asarray(finals["eager"])[:, None])
    lines.append(f"- P(compiled > eager): {poi.point:.3f} [{poi.low:.3f}, {poi.high:.3f}]")
    control_root = arm_folders("control", out=out)[1] / "runs" / env / algo  # eager, today's code, same seeds
    both, ours, theirs = _finals_with_control(compiled_root, control_root)
    if len(both) > len(seeds):  # extra seeds only the compiled arm and the control ran
        est_c, est_e = _estimate(ours), _estimate(theirs)
        vs_all = probability_of_improvement(np.asarray(ours)[:, None], np.asarray(theirs)[:, None])
        lines.append(f"- seeds {both[0]}-{both[-1]} ({len(both)}): compiled IQM {est_c['iqm']:.1f} "
                     f"[{est_c['low']:.1f}, {est_c['high']:.1f}], control IQM {est_e['iqm']:.1f} "
                     f"[{est_e['low']:.1f}, {est_e['high']:.1f}]; P(compiled > control) = {vs_all.point:.3f} "
                     f"[{vs_all.low:.3f}, {vs_all.high:.3f}]")
    control = [_evals(control_root / f"seed{seed}")[-1][1] for seed in seeds
               if (control_root / f"seed{seed}" / "summary.json").exists()]
    control_doc = None
    if len(control) == len(seeds):
        est = _estimate(control)
        vs = probability_of_improvement(np.asarray(finals["compiled"])[:, None], np.asarray(control)[:, None])
        lines.append(f"- eager with today's code (control): IQM {est['iqm']:.1f} [{est['low']:.1f}, "
                     f"{est['high']:.1f}] (mean {est['mean']:.1f}); finals {', '.join(f'{c:.1f}' for c in control)}")
        lines.append(f"- P(compiled > eager with today's code): {vs.point:.3f} [{vs.low:.3f}, {vs.high:.3f}]")
        control_doc = {"iqm_final_return": est, "finals": control,
                       "p_compiled_gt_control": {"point": vs.point, "low": vs.low, "high": vs.high}}
    compiled_all, control_all = list(_finals(compiled_root).values()), list(_finals(control_root).values())
    arms_doc = {}
    for arm in ("props_only", "ppo_only", "f64_compiled", "f64_eager", "graph_eager"):  # the diagnostic arms present
        common, ours, theirs = _finals_with_control(arm_folders(arm, out=out)[1] / "runs" / env / algo, control_root)
        if len(common) < 2:
            continue
        est = _estimate(ours)
        vs = probability_of_improvement(np.asarray(ours)[:, None], np.asarray(theirs)[:, None])
        high = sum(r > 2500 for r in ours)
        lines.append(f"- {arm}, seeds {common[0]}-{common[-1]} ({len(common)}): IQM {est['iqm']:.1f} "
                     f"[{est['low']:.1f}, {est['high']:.1f}], {high} above 2500; P({arm} > control) = "
                     f"{vs.point:.3f} [{vs.low:.3f}, {vs.high:.3f}]")
        arms_doc[arm] = {"seeds": common, "finals": ours, "iqm_final_return": est, "above_2500": high,
                         "p_arm_gt_control": {"point": vs.point, "low": vs.low, "high": vs.high}}
    # runs end near 1000 (stuck) or above 3000 (hopping): do the arms share one rate of hopping?
    counts = {"control": sum(r > 2500 for r in control_all), "stored_eager": sum(r > 2500 for r in finals["eager"]),
              "compiled": sum(r > 2500 for r in compiled_all)}
    sizes = {"control": len(control_all), "stored_eager": len(finals["eager"]), "compiled": len(compiled_all)}
    for arm, arm_doc in arms_doc.items():
        counts[arm], sizes[arm] = arm_doc["above_2500"], len(arm_doc["seeds"])
    homogeneity = {}
    for label, left_out in (("all arms", ()),
                            ("the arms whose steps do not run on ATen's float32 kernels",
                             ("control", "stored_eager", "graph_eager"))):
        table = [[counts[a], sizes[a] - counts[a]] for a in counts if a not in left_out]
        homogeneity[label] = float(scipy.stats.chi2_contingency(table)[1])
        lines.append(f"- one rate of runs above 2500 across {label} (chi-square test of homogeneity): "
                     f"p = {homogeneity[label]:.4f}")
    doc = {"env": env, "algo": algo, "seeds": seeds, "metric": "final eval/return_mean",
           "eager_runs": str(eager_root), "compiled_runs": str(compiled_root),
           "iqm_final_return": estimates,
           "p_compiled_gt_eager": {"point": poi.point, "low": poi.low, "high": poi.high},
           "per_seed": rows, "eager_now_control": control_doc,
           "diagnostic_arms": arms_doc,
           "above_2500": {"counts": counts, "runs": sizes, "homogeneity_p": homogeneity}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    print("\n".join(lines))


ARMS = ("control", "compiled", "stored_eager", "props_only", "ppo_only", "f64_compiled", "f64_eager", "graph_eager")


def _arm_finals(arm: str, env: str, algo: str, out: Path = OUT) -> dict[int, float]:
    """Each finished seed's final evaluation return in one arm's records ("stored_eager": the PROPS RL
    comparison's eager runs)."""
    return _finals((EAGER if arm == "stored_eager" else arm_folders(arm, out=out)[1] / "runs") / env / algo)


def arms(env: str, algo: str, seeds: list[int] | None = None, threshold: float = 2500.0, out: Path = OUT) -> None:
    """Every arm trained for ``env``/``algo`` (on ``seeds`` where given) against the control: IQM final
    return, runs ending above ``threshold`` (Hopper's runs end stuck near 1000 or hopping above 3000),
    and, on the seeds both ran, P(arm > control) and Fisher's exact test of the two counts."""
    control = _arm_finals("control", env, algo, out)
    lines = [f"# {algo} on {env}: every arm against the eager float32 control (final evaluation return)", "",
             f"| arm | seeds | IQM [95% CI] | above {threshold:g} | P(arm > control), common seeds | "
             "Fisher p vs control, common seeds |", "|---|---|---|---|---|---|"]
    doc: dict[str, Any] = {"env": env, "algo": algo, "threshold": threshold, "arms": {}}
    for arm in ARMS:
        finals = {k: v for k, v in _arm_finals(arm, env, algo, out).items() if seeds is None or k in seeds}
        if len(finals) < 2:
            continue
        ours = list(finals.values())
        est, high = _estimate(ours), sum(r > threshold for r in ours)
        entry: dict[str, Any] = {"seeds": list(finals), "finals": ours, "iqm_final_return": est, "above": high}
        vs_text = fisher_text = "-"
        common = sorted(k for k in finals if k in control)
        if arm != "control" and len(common) >= 2:
            mine, theirs = [finals[k] for k in common], [control[k] for k in common]
            vs = probability_of_improvement(np.asarray(mine)[:, None], np.asarray(theirs)[:, None])
            up = [sum(r > threshold for r in side) for side in (mine, theirs)]
            fisher = float(scipy.stats.fisher_exact([[up[0], len(common) - up[0]], [up[1], len(common) - up[1]]])[1])
            vs_text = f"{vs.point:.3f} [{vs.low:.3f}, {vs.high:.3f}] (n={len(common)})"
            fisher_text = f"{fisher:.2g} ({up[0]} vs {up[1]})"
            entry["vs_control"] = {"seeds": common, "p_arm_gt_control": {"point": vs.point, "low": vs.low,
                                                                         "high": vs.high},
                                   "above": up, "fisher_p": fisher}
        doc["arms"][arm] = entry
        span = f"{min(finals)}-{max(finals)} ({len(finals)})"
        lines.append(f"| {arm} | {span} | {est['iqm']:.1f} [{est['low']:.1f}, {est['high']:.1f}] | "
                     f"{high} of {len(ours)} | {vs_text} | {fisher_text} |")
    if not doc["arms"]:
        raise SystemExit(f"no arm has two finished {algo} runs on {env} under {out}")
    name = f"arms_{env}_{algo}" + ("" if seeds is None else f"_seeds{min(seeds)}-{max(seeds)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print("\n".join(lines))


def divergence(env: str = "Hopper-v5", algo: str = "props", scratch: Path = SCRATCH, out: Path = OUT) -> None:
    """Where each seed's compiled run and control part, and each arm's mean early entropy (module docstring)."""
    def ppo_lines(run_dir: Path) -> list[dict[str, float]]:
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                if '"losses/epochs_run"' in line]

    arms = {arm: arm_folders(arm, scratch)[0] for arm in ("compiled", "control", "f64_compiled", "f64_eager")}
    runs = {arm: {int(d.name[4:]): ppo_lines(d) for d in (root / env / algo).glob("seed*")
                  if (d / "summary.json").exists()} for arm, root in arms.items()}
    first: dict[int, int | None] = {}
    for seed in sorted(set(runs["compiled"]) & set(runs["control"])):
        ours, theirs = runs["compiled"][seed], runs["control"][seed]
        first[seed] = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False))
                            if abs(a["losses/entropy"] - b["losses/entropy"]) > 1e-4), None)
    counts = {str(k): sum(v == k for v in first.values()) for k in sorted({v for v in first.values() if v is not None})}
    print(f"first PPO update with an entropy gap > 1e-4, compiled vs control, over {len(first)} seeds: {counts}"
          f"; never: {sum(v is None for v in first.values())}")
    updates = [0, 1, 2, 3, 4, 6, 8, 10, 15, 20]
    entropy = {arm: {i: float(np.mean([r[i]["losses/entropy"] for r in per_seed.values()])) for i in updates}
               for arm, per_seed in runs.items() if per_seed}
    for arm, row in entropy.items():
        print(f"{arm} ({len(runs[arm])} seeds) mean entropy after PPO update " +
              ", ".join(f"{i}: {v:.4f}" for i, v in row.items()))
    doc = {"env": env, "algo": algo, "first_diverging_ppo_update": first, "counts": counts,
           "mean_entropy": entropy, "seeds": {arm: sorted(r) for arm, r in runs.items()}}
    (out / "divergence.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["divergence"]:
        divergence()
    elif sys.argv[1:2] == ["arms"]:  # ``arms [--env E] [--algo A] [--seeds S] [--threshold R]``
        import argparse

        from hybridpg.experiments.spec_file import parse_seeds

        parser = argparse.ArgumentParser(description="every arm against the eager control")
        parser.add_argument("command", choices=["arms"])
        parser.add_argument("--env", default="Hopper-v5")
        parser.add_argument("--algo", default="props")
        parser.add_argument("--seeds", default=None)
        parser.add_argument("--threshold", type=float, default=2500.0)
        args = parser.parse_args()
        arms(args.env, args.algo, None if args.seeds is None else parse_seeds(args.seeds), args.threshold)
    elif sys.argv[1:2] == ["control"]:  # the eager control: ``control [--seeds S]``, then ``report``
        sys.argv[1] = "run"
        learning_check_main(__doc__, lambda env, algo, seeds: run(env, algo, seeds, compiled=False), report)
    elif sys.argv[1:2] in (["f64-compiled"], ["f64-eager"]):  # both paths in float64
        compiled = sys.argv[1] == "f64-compiled"
        sys.argv[1] = "run"
        learning_check_main(__doc__, lambda env, algo, seeds: run(env, algo, seeds, compiled=compiled,
                                                                 float64=True), report)
    elif sys.argv[1:2] == ["graph-eager"]:  # the compiled step's function, not compiled
        sys.argv[1] = "run"
        learning_check_main(__doc__, lambda env, algo, seeds: run(env, algo, seeds, graph_eager=True), report)
    elif sys.argv[1:2] in (["props-only"], ["ppo-only"]):  # one kind of step compiled
        only = sys.argv[1].removesuffix("-only")
        sys.argv[1] = "run"
        learning_check_main(__doc__, lambda env, algo, seeds: run(env, algo, seeds, only=only), report)
    else:
        learning_check_main(__doc__, run, report)
