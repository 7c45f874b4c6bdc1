"""The fixed-target experiment: how fast each sampling method drives the sampling error down.

theta is frozen (a fresh random init, or a trained run's policy with its observation statistics),
no PPO update ever happens, and the buffer grows by ``batches`` batches of ``batch_size``
transitions. The data is collected with the method's behavior policy, reusing the on-policy
agent's own collection and behavior updates: on-policy samples theta, PROPS re-fits phi every m
steps, ROS acts before every env step with phi = theta - ros_lr * g_bar (g_bar the mean score of
everything collected so far, taken at theta; steps never accumulate). After each batch the sampling
error of everything collected so far is recorded (spec: props.md, "Fixed-target experiment").

Every row records the settings that shape its method (target, batches, batch size, SE epochs, and
m, the ROS step size or the PROPS knobs), and rows are summarized and plotted per setting: a curve
is labelled by its method ("ros lr=0.1") and by the settings that vary in its env, so commands
with different settings can share one output folder without merging.

``hybridpg sampling-error`` adds its rows to ``OUT/sampling_error.jsonl``, replacing earlier rows
of the same setting and seed (a re-run does not count a seed twice), and rewrites
``sampling_error.csv`` and ``sampling_error.png`` (mean SE against samples with 95% t-intervals
over seeds) from the whole file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from hybridpg.algorithms.base import Agent, Run
from hybridpg.algorithms.onpolicy import PROPS, ROS, OnPolicyAgent, PPOBuffer
from hybridpg.data.normalizers import ObsNormalizer
from hybridpg.diagnostics.sampling_error import estimate_sampling_error
from hybridpg.errors import CheckpointError, ConfigError, HybridPGError
from hybridpg.experiments.spec_file import parse_seeds
from hybridpg.training.checkpoint import atomic_write_bytes

#: the agent whose sampler each method names (PPO-Buffer: theta samples; its b batches are the buffer)
METHODS: dict[str, type[OnPolicyAgent]] = {"on-policy": PPOBuffer, "props": PROPS, "ros": ROS}
PROPS_KNOBS = ("props_lr", "props_target_kl", "props_lambda", "props_clip", "props_minibatches", "props_epochs")
# PROPS in this experiment takes full-buffer gradient steps. What it must correct is the buffer-wide
# score sum, of size ~sqrt(k/N) per sample; a 1/16 minibatch adds noise ~4x that size, so the
# spec's RL setting (16 minibatches, lr 1e-3) spends its steps on noise: KL(theta||phi) stayed
# ~0.005 and SE fell to only 0.84x on-policy. Chosen on held-out seeds 100-101 (BENCHMARKS.md).
# It suits small batches (m) added to a large buffer; where one batch is as large as the buffer it
# overshoots, so it is not the RL default.
FIXED_TARGET_PROPS: dict[str, Any] = {"props_minibatches": 1, "props_epochs": 64, "props_lr": 3e-3}
INT_KNOBS = ("props_minibatches", "props_epochs")
# what a row records besides env, method, seed, samples and se; the settings each method has
COMMON = ("target", "batches", "batch_size", "se_epochs")
OWN: dict[str, tuple[str, ...]] = {"on-policy": (), "props": ("behavior_steps", *PROPS_KNOBS),
                                   "ros": ("behavior_steps", "ros_lr")}
SETTINGS = (*COMMON, "behavior_steps", "ros_lr", *PROPS_KNOBS)
# the command's flags for the config fields it sets (config errors name the field)
FLAGS = {"n_steps": "--batch-size", "buffer_batches": "--batches", "behavior_steps": "--behavior-steps",
         "ros_lr": "--ros-lr", **{k: f"--{k.replace('_', '-')}" for k in PROPS_KNOBS}}


class FrozenObsNormalizer(ObsNormalizer):
    """An observation normalizer whose statistics no longer move: theta's inputs stay fixed."""

    def update(self, obs: np.ndarray) -> None:
        del obs

    @classmethod
    def freeze(cls, norm: ObsNormalizer) -> FrozenObsNormalizer:
        frozen = cls(norm.rms.mean.shape, enabled=norm.enabled, clip=norm.clip)
        frozen.load_state_dict(norm.state_dict())
        return frozen


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise ConfigError(f"--method {text!r}: choose from {', '.join(METHODS)} (comma-separated)")
    return methods


def _build_agent(env: str | None, method: str, target: str, seed: int, overrides: dict[str, Any]) -> OnPolicyAgent:
    """An on-policy agent whose theta is the target; its config selects the behavior policy."""
    settings = {**overrides, "eval_freq": 0, "checkpoint_freq": 0}
    agent_cls = METHODS[method]
    if target == "random":
        if env is None:
            raise ConfigError("--env is required with --target random")
        return _warm_up(agent_cls(env, seed=seed, **settings))
    path = Path(target)
    if not path.exists():
        raise CheckpointError(f"--target {target}: no such run folder or checkpoint (or use 'random')")
    source = Agent.load(path)
    try:
        if not isinstance(source, OnPolicyAgent):
            raise ConfigError(f"--target {target}: a {source.config.algo} run has no on-policy actor to freeze")
        agent = agent_cls(env or source.env_id, seed=seed, hidden_sizes=source.config.hidden_sizes,
                          norm_obs=source.obs_norm.enabled, **settings)
        agent.policy.load_state_dict(source.policy.state_dict())
        agent.obs_norm = FrozenObsNormalizer.freeze(source.obs_norm)
    finally:
        source.close()
    agent.sampler.restart_from_target()  # phi and PROPS's reference start at the loaded theta
    return agent


def _warm_up(agent: OnPolicyAgent, steps: int = 2048) -> OnPolicyAgent:
    """Fit the observation statistics on theta's own states, then freeze them.

    A fresh normalizer would keep moving during collection, so early samples would come from a
    different pi(a|s) than the one the sampling error is measured against.
    """
    vec = agent.vec
    for _ in range(max(steps // vec.num_envs, 1)):
        result = vec.step(agent.predict(vec.obs, deterministic=False)[0])
        agent.obs_norm.update(result.obs)
    agent.obs_norm = FrozenObsNormalizer.freeze(agent.obs_norm)
    return agent


def experiment_config(
    method: str, batches: int, batch_size: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Config fields of the method's agent: the shared ones plus those of its own sampler."""
    values = {"n_steps": batch_size, "buffer_batches": batches, "num_envs": 1, **FIXED_TARGET_PROPS,
              **(overrides or {})}
    own = METHODS[method].config_cls.__dataclass_fields__
    return {k: v for k, v in values.items() if k in own}


def run_fixed_target(
    env: str | None, method: str, target: str, seed: int, batches: int = 16, batch_size: int = 1024,
    se_epochs: int = 1000, overrides: dict[str, Any] | None = None, record_at: Collection[int] | None = None,
) -> list[dict[str, Any]]:
    """One seed of one method: SE over all data collected so far, after each batch (or only after
    the 1-based batch numbers in ``record_at``: each estimate is a full pi_D fit)."""
    if batches < 1 or batch_size < 1 or se_epochs < 1:
        raise ConfigError("--batches, --batch-size and --se-epochs must be >= 1")
    agent = _build_agent(env, method, target, seed, experiment_config(method, batches, batch_size, overrides))
    rows: list[dict[str, Any]] = []
    run = Run(agent, batches * batch_size, None, progress=False)
    try:
        chunk = agent.sampler.chunk  # m for PROPS and ROS, the whole batch for on-policy sampling
        for b in range(batches):
            for _ in range(batch_size // chunk):
                agent.collect(chunk, run)
                agent.adapt_behavior()
            if record_at is not None and b + 1 not in record_at:
                continue
            obs, actions = agent.buffer_data()
            se = estimate_sampling_error(agent.policy, obs, actions, se_epochs, seed=seed * 7919 + b)
            own = {k: getattr(agent.config, k) for k in OWN[method]}
            rows.append({"env": agent.env_id, "method": method, "target": target, "batches": batches,
                         "batch_size": batch_size, "se_epochs": se_epochs, **own, "seed": seed,
                         "samples": int(obs.shape[0]), "se": se})
    finally:
        run.close()
        agent.close()
    return rows


# -- summaries ------------------------------------------------------------------------------------
def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval (0 for a single value)."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return float(arr.mean()), 0.0
    half = stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size)
    return float(arr.mean()), float(half)


def label(row: dict[str, Any]) -> str:
    """The method, with ROS's step size: ROS at different lr are different samplers."""
    if row["method"] == "ros" and row.get("ros_lr") is not None:
        return f"ros lr={float(row['ros_lr']):g}"
    return str(row["method"])


def label_order(name: str) -> tuple[int, float]:
    """on-policy, props, then ROS by increasing step size (rows from before ros_lr was recorded first)."""
    method, _, lr = name.split(" (")[0].partition(" lr=")  # " (batches=2)": settings after the method
    rank = list(METHODS).index(method) if method in METHODS else len(METHODS)
    return rank, float(lr) if lr else 0.0


def _fields(row: dict[str, Any]) -> tuple[str, ...]:
    """The settings that shape this row's method (all of them for a method this version lacks)."""
    return COMMON + OWN.get(str(row["method"]), SETTINGS[len(COMMON):])


def setting(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes rows one curve: env, method and each of its settings (None where not recorded)."""
    return (row["env"], row["method"], *((f, row.get(f)) for f in _fields(row)))


def curve_labels(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], str]:
    """setting -> its curve's label: the method (ROS with its step size), then the settings that
    vary among the rows of its env, so no two settings share a label."""
    labels: dict[tuple[Any, ...], str] = {}
    for env in {r["env"] for r in rows}:
        mine = [r for r in rows if r["env"] == env]
        varying = [f for f in SETTINGS if f != "ros_lr" and len({r.get(f) for r in mine if f in _fields(r)}) > 1]
        for r in mine:
            shown = [f"{f}={_show(r.get(f))}" for f in varying if f in _fields(r)]
            labels[setting(r)] = label(r) + (f" ({', '.join(shown)})" if shown else "")
    return labels


def _show(value: Any) -> str:
    if value is None:
        return "?"  # a row from before this setting was recorded
    return f"{value:g}" if isinstance(value, float) else str(value)


def summarize(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[float, float, int]]:
    """(env, curve label, samples) -> (mean SE, 95% CI half-width, number of seeds)."""
    labels = curve_labels(rows)
    groups: dict[tuple[str, str, int], dict[int, float]] = {}
    for r in rows:  # one value per seed: a seed's later row replaces an earlier one
        groups.setdefault((r["env"], labels[setting(r)], int(r["samples"])), {})[int(r["seed"])] = float(r["se"])
    order = sorted(groups, key=lambda k: (k[0], label_order(k[1]), k[1], k[2]))
    return {k: (*mean_ci(list(groups[k].values())), len(groups[k])) for k in order}


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` without the rows of any (setting, seed) that ``new`` brings, then ``new``."""
    redone = {(setting(r), r["seed"]) for r in new}
    return [r for r in old if (setting(r), r["seed"]) not in redone] + list(new)


def write_outputs(out: Path, new_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``new_rows`` to the JSONL (replacing the same settings' and seeds' earlier rows); rewrite
    the CSV and PNG from every row in it. Each file is replaced whole, never left half-written."""
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "sampling_error.jsonl"
    rows = merge_rows(read_rows(jsonl), new_rows)
    atomic_write_bytes(jsonl, "".join(json.dumps(r) + "\n" for r in rows).encode())
    columns = ["env", "method", "ros_lr", *(f for f in SETTINGS if f != "ros_lr"), "seed", "samples", "se"]
    columns += sorted({k for r in rows for k in r} - set(columns))  # keys of rows from other versions
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "sampling_error.csv", text.getvalue().encode())
    plot(rows, out / "sampling_error.png")
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarize(rows)
    envs = sorted({k[0] for k in table})
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.8), squeeze=False)
    labels = sorted({k[1] for k in table}, key=lambda name: (label_order(name), name))
    for ax, env in zip(axes[0], envs, strict=True):
        for method in labels:
            points = sorted((k[2], v) for k, v in table.items() if k[0] == env and k[1] == method)
            if not points:
                continue
            x = np.array([p[0] for p in points])
            mean = np.array([p[1][0] for p in points])
            half = np.array([p[1][1] for p in points])
            ax.plot(x, mean, label=f"{method} (n={points[-1][1][2]})")
            ax.fill_between(x, mean - half, mean + half, alpha=0.25)
        ax.set(title=env, xlabel="samples", ylabel="sampling error KL(pi_D || pi_theta)", yscale="log")
        ax.legend()
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, image.getvalue())


# -- command line ---------------------------------------------------------------------------------
def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("sampling-error", help="fixed-target sampling-error experiment",
                              description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--env", default=None, help="Gymnasium id (default with a run folder: the run's env)")
    p.add_argument("--method", default="on-policy,props,ros", help="comma list of on-policy, props, ros")
    p.add_argument("--target", default="random", help="'random' or a run folder / checkpoint of an on-policy run")
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--seeds", default="5", help="as in sweep: a count N (seeds 0..N-1, shifted by --seed-start), "
                                                "a list 0,3,7 or a range 5-9 (default: %(default)s)")
    p.add_argument("--seed-start", type=int, default=0, help="first seed when --seeds is a count (default: 0)")
    p.add_argument("--se-epochs", type=int, default=1000)
    p.add_argument("--behavior-steps", type=int, default=None,
                   help="m: steps between PROPS and ROS behavior updates (default: 256, or --batch-size if smaller)")
    p.add_argument("--ros-lr", type=float, default=1e-5,
                   help="ROS step size alpha in phi = theta - alpha * g_bar (default: %(default)s)")
    add_props_arguments(p)
    p.add_argument("--out", type=Path, default=Path("runs/sampling-error"),
                   help="results folder; rows of other settings there are kept apart (default: %(default)s)")
    p.set_defaults(func=_main)


def add_props_arguments(p: argparse.ArgumentParser) -> None:
    """``--props-lr`` etc.; unset ones keep FIXED_TARGET_PROPS, else the PROPS config default."""
    for knob in PROPS_KNOBS:
        default = FIXED_TARGET_PROPS.get(knob, "the PROPS config default")
        p.add_argument(f"--{knob.replace('_', '-')}", type=int if knob in INT_KNOBS else float, default=None,
                       help=f"PROPS setting (default: {default})")


def props_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--props-*`` options that were given, as config fields (counts as ints)."""
    out: dict[str, Any] = {}
    for knob in PROPS_KNOBS:
        value = getattr(args, knob)
        if value is not None:
            out[knob] = int(value) if knob in INT_KNOBS else value
    return out


def flag_error(exc: ConfigError) -> ConfigError:
    """A config error as this command's flags: "--behavior-steps 100: must divide --batch-size 256",
    not "config field 'behavior_steps'=100: m must divide n_steps=256"."""
    found = re.fullmatch(r"config field '(\w+)'=(.*?): (.*)", str(exc))
    if found is None or found[1] not in FLAGS:
        return exc
    reason = re.sub(r"\bb\*n\b", "--batches * --batch-size", found[3])
    reason = re.sub(r"\bm\b", "--behavior-steps", re.sub(r"\bb\b", "--batches", reason))
    reason = re.sub(r"\b(\w+)=", lambda m: f"{FLAGS[m[1]]} " if m[1] in FLAGS else m[0], reason)
    flag = FLAGS[found[1]]
    reason = reason.removeprefix(f"{flag} ")  # "m must ..." reads "--behavior-steps 100: must ..."
    return ConfigError(f"{flag} {found[2]}: {reason}")


def _check_args(args: argparse.Namespace, methods: list[str]) -> dict[str, Any]:
    """Every setting checked before any folder is made or run started; returns the config overrides."""
    args.seed_list = [args.seed_start + s for s in parse_seeds(args.seeds)] if args.seeds.strip().isdigit() \
        else parse_seeds(args.seeds)
    for flag, value, least in (("--seed-start", args.seed_start, 0),
                               ("--batches", args.batches, 1), ("--batch-size", args.batch_size, 1),
                               ("--se-epochs", args.se_epochs, 1)):
        if value < least:
            raise ConfigError(f"{flag} {value}: must be >= {least}")
    if args.target == "random" and args.env is None:
        raise ConfigError("--env is required with --target random")
    if args.target != "random" and not Path(args.target).exists():
        raise CheckpointError(f"--target {args.target}: no such run folder or checkpoint (or use 'random')")
    m = args.behavior_steps if args.behavior_steps is not None else min(256, args.batch_size)
    overrides: dict[str, Any] = {"behavior_steps": m, "ros_lr": args.ros_lr, **props_overrides(args)}
    for method in methods:
        try:
            METHODS[method].config_cls.from_dict(experiment_config(method, args.batches, args.batch_size, overrides))
        except ConfigError as exc:
            raise flag_error(exc) from None
    return overrides


def _main(args: argparse.Namespace) -> int:
    methods = parse_methods(args.method)
    overrides = _check_args(args, methods)
    try:  # fail before the (long) runs, not after
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HybridPGError(f"cannot write results to {args.out}: {exc.strerror or exc}") from None
    rows: list[dict[str, Any]] = []
    for seed in args.seed_list:
        for method in methods:
            rows += run_fixed_target(args.env, method, args.target, seed, args.batches, args.batch_size,
                                     args.se_epochs, overrides)
            last = rows[-1]
            print(f"{last['env']} {label(last)} seed {seed}: SE at {last['samples']} samples = {last['se']:.5f}",
                  flush=True)
    before = len(read_rows(args.out / "sampling_error.jsonl"))
    try:
        all_rows = write_outputs(args.out, rows)
    except OSError as exc:
        raise HybridPGError(f"cannot write results to {args.out}: {exc.strerror or exc}") from None
    labels = curve_labels(all_rows)
    ours = {(r["env"], labels[setting(r)]) for r in rows}
    table = summarize(all_rows)
    for env, name in sorted(ours, key=lambda k: (k[0], label_order(k[1]), k[1])):
        samples, (mean, half, k) = max((key[2], v) for key, v in table.items() if key[:2] == (env, name))
        print(f"{env} {name}: SE {mean:.5f} +- {half:.5f} (95% CI, {k} seeds) at {samples} samples")
    replaced = before + len(rows) - len(all_rows)
    note = f"; replaced {replaced} earlier rows of the same settings and seeds" if replaced else ""
    print(f"wrote {args.out / 'sampling_error.csv'} and {args.out / 'sampling_error.png'} "
          f"({len(all_rows)} rows in {args.out / 'sampling_error.jsonl'}{note})")
    return 0
