"""``hybridpg sweep``: every (algo, env, seed) as its own run folder, run in parallel and restartably.

Layout: ``ROOT/sweep.yaml`` (the spec and the commands that produced it) and one run folder per
run at ``ROOT/<env>/<algo>/seed<k>/`` (the same folder ``hybridpg train`` writes). A run whose
``summary.json`` says finished is skipped on a rerun; one with ``checkpoints/latest.pt`` resumes
from it; anything else starts afresh. A failing run writes ``error.txt`` (its traceback) and does
not stop the others.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TextIO

from hybridpg.errors import ConfigError, HybridPGError
from hybridpg.experiments.runs import (
    RunResult,
    RunSpec,
    SweepProgress,
    execute_run,
    init_worker,
    record_failure,
    run_state,
    summary_return,
)
from hybridpg.experiments.spec_file import BUNDLED, load_spec, parse_seeds, validate_settings
from hybridpg.experiments.sweep_spec import SweepSpec, write_sweep_file

# -- backends ---------------------------------------------------------------------------------------


class SweepTerminated(KeyboardInterrupt):
    """SIGTERM stopped a local sweep after its running runs checkpointed (the CLI exits 143)."""

    exit_code = 128 + signal.SIGTERM


@contextlib.contextmanager
def _forward_sigterm() -> Iterator[None]:
    """SIGTERM to the sweep also reaches its workers, whose runs then checkpoint and stop (a rerun
    resumes them); without this the sweep died alone and orphaned workers trained on."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        del frame
        for child in multiprocessing.active_children():
            if child.pid is not None:
                os.kill(child.pid, signum)
        raise SweepTerminated("stopped by SIGTERM; the running runs saved checkpoints, and rerunning the same "
                              "sweep command resumes them")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_local(runs: Sequence[RunSpec], workers: int, progress: SweepProgress) -> None:
    """A spawn-context process pool; at most ``workers`` runs are in flight, so 'running' is exact.

    A worker killed by the OS (out of memory, say) breaks the whole pool and every run in flight
    with it. Those runs become suspects: each is run again alone (it resumes from its checkpoint);
    one whose worker dies alone is recorded as failed, and the sweep goes on with the others.
    """
    queue = list(runs)
    suspects: set[str] = set()
    context = multiprocessing.get_context("spawn")
    with _forward_sigterm():
        while queue:
            suspect = next((spec for spec in queue if spec.name in suspects), None)
            if suspect is not None:
                queue.remove(suspect)
            batch, size = ([suspect], 1) if suspect is not None else (queue, workers)
            with ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=init_worker) as pool:
                lost = _drain(pool, batch, size, progress, suspects)
            for spec in lost:
                if suspect is not None:  # it died with no other run beside it: that run is the cause
                    progress.finished(record_failure(spec, HybridPGError(
                        "its worker process was killed (by the OS, e.g. out of memory)")))
                else:
                    suspects.add(spec.name)
                    queue.insert(0, spec)


def _drain(pool: ProcessPoolExecutor, queue: list[RunSpec], workers: int, progress: SweepProgress,
           suspects: set[str]) -> list[RunSpec]:
    """Run ``queue`` in ``pool`` until it is empty; returns the runs lost when a worker died."""
    in_flight: dict[Future[RunResult], RunSpec] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                spec = queue.pop(0)
                in_flight[pool.submit(execute_run, spec.to_dict())] = spec
                progress.started(spec.name)
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            lost: list[RunSpec] = []
            for future in finished:
                spec = in_flight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(spec)
                    continue
                except Exception as exc:  # noqa: BLE001 (anything else of one run is that run's failure)
                    result = record_failure(spec, exc)
                if result.status == "skipped" and spec.name in suspects:
                    # it finished just before the pool broke (its result was lost with the pool): done here
                    result = dataclasses.replace(result, status="finished")
                progress.finished(result)
            if lost:  # the pool is dead: every run still in it is lost too
                lost += list(in_flight.values())
                progress.running = max(progress.running - len(lost), 0)
                return lost
    except BaseException:
        for future in in_flight:
            future.cancel()
        raise
    return []


# -- the sweep --------------------------------------------------------------------------------------


def validate_spec(spec: SweepSpec) -> None:
    from hybridpg.algorithms import ALGORITHMS

    unknown = [a for a in spec.algos if a not in ALGORITHMS]
    if unknown:
        choices = ", ".join(sorted(ALGORITHMS))
        raise ConfigError(f"unknown algorithm(s) {', '.join(unknown)}; choose from {choices}")
    if not spec.algos or not spec.envs or not spec.seeds:
        raise ConfigError("a sweep needs at least one algorithm, one env and one seed")
    if len(set(spec.algos)) != len(spec.algos) or len(set(spec.envs)) != len(spec.envs):
        raise ConfigError("--algos and --envs must not repeat an entry")
    if spec.total_timesteps < 1 and (spec.spec_file is None or spec.total_timesteps != 0):
        raise ConfigError(f"--total-timesteps={spec.total_timesteps}: must be >= 1")
    if spec.workers < 1:
        raise ConfigError(f"--workers={spec.workers}: must be >= 1")
    if spec.backend not in ("local", "ray"):
        raise ConfigError(f"--backend={spec.backend}: choose local or ray")
    if spec.seeds_per_process < 1:
        raise ConfigError(f"--seeds-per-process={spec.seeds_per_process}: must be >= 1")
    if spec.seeds_per_process > 1 and spec.backend != "local":
        raise ConfigError("--seeds-per-process groups seeds in the local backend's processes; leave it out with "
                          "--backend ray")
    if spec.cpus_per_run <= 0:
        raise ConfigError(f"--cpus-per-run={spec.cpus_per_run}: must be > 0")
    # a field no selected algorithm knows is a typo; one that only some know (or a value that one
    # algorithm rejects) fails just those runs, which the sweep reports
    known = set().union(*(ALGORITHMS[a].config_cls.__dataclass_fields__ for a in spec.algos))
    typos = sorted(set(spec.overrides) - known)
    if typos:
        raise ConfigError(f"--set {typos[0]}: not a config field of {', '.join(spec.algos)}")
    for name in spec.overrides:  # said once, so a setting is never silently dropped
        lacking = [a for a in spec.algos if name not in ALGORITHMS[a].config_cls.__dataclass_fields__]
        if lacking:
            having = [a for a in spec.algos if a not in lacking]
            print(f"note: --set {name} applies to {', '.join(having)} only ({', '.join(lacking)} has no such field)",
                  file=sys.stderr)
    if spec.spec_file is not None:  # every run's merged settings, checked before any run starts
        validate_settings(spec.spec_file, spec.overrides, f"spec {spec.spec_file.path} with --set")


def run_sweep(spec: SweepSpec, stream: TextIO | None = None, tty: bool | None = None) -> SweepProgress:
    validate_spec(spec)
    write_sweep_file(spec)
    runs = spec.runs()
    progress = SweepProgress(len(runs), stream, tty)
    todo = []
    for run in runs:
        if all(run_state(d) == "finished" for d in run.folders()):
            progress.finished(RunResult(run.name, "skipped", eval_return=summary_return(run.folders()[0])),
                              was_running=False)
        else:
            todo.append(run)
    try:
        if todo and spec.backend == "ray":
            from hybridpg.experiments.ray_backend import run_ray

            run_ray(todo, spec, progress)
        elif todo:
            run_local(todo, spec.workers, progress)
    finally:
        progress.close()
    return progress


# -- CLI --------------------------------------------------------------------------------------------


def parse_overrides(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected field=value")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run algos x envs x seeds, one run folder each, in parallel (restartable)",
        description="Run every (algo, env, seed) as its own run folder under --out. Rerunning the same "
                    "command skips finished runs and resumes interrupted ones from their checkpoint.",
    )
    parser.add_argument("--spec", default=None, metavar="FILE",
                        help="a spec file (YAML: algos, envs, seeds, budgets, settings per algo, env and "
                             "algo x env) or a bundled spec's name: " + ", ".join(sorted(BUNDLED)))
    parser.add_argument("--algos", help="comma-separated, e.g. props,ppo-buffer,ppo (not with --spec)")
    parser.add_argument("--envs", help="comma-separated Gymnasium ids (not with --spec)")
    parser.add_argument("--seeds", default=None,
                        help="count N (seeds 0..N-1), list 0,3,7 or range 5-9 (default: the spec's, else 5)")
    parser.add_argument("--total-timesteps", type=int, default=None,
                        help="env steps per run (with --spec: replaces the spec's budgets)")
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE", dest="overrides",
                        help="config override for every run (repeatable)")
    parser.add_argument("--env-kwargs", default=None, metavar="DICT",
                        help="env constructor arguments for every run, as train takes them: a=1,b=2")
    parser.add_argument("--out", type=Path, required=True, help="sweep root folder")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="runs in parallel (default: CPU count)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", default=None,
                        help="existing Ray cluster (e.g. auto or HOST:6379); default starts a local one")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs reserved per run")
    parser.add_argument("--seeds-per-process", type=int, default=1, metavar="K",
                        help="train up to K seeds of one setting together in one process (ppo, ppo-buffer, props, "
                             "ros; local backend), each in its own run folder (default: %(default)s)")
    parser.set_defaults(func=handle)


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    overrides = parse_overrides(args.overrides)
    if args.env_kwargs is not None:  # the spelling train and collect use
        if "env_kwargs" in overrides:
            raise ConfigError("give the env keywords once: --env-kwargs or --set env_kwargs=...")
        overrides["env_kwargs"] = args.env_kwargs
    common: dict[str, Any] = {
        "overrides": overrides, "root": args.out.resolve(), "workers": args.workers,
        "backend": args.backend, "ray_address": args.ray_address, "cpus_per_run": args.cpus_per_run,
        "seeds_per_process": args.seeds_per_process,
    }
    if args.spec is not None:
        if args.algos or args.envs:
            raise ConfigError("--algos and --envs come from the spec file; leave them out with --spec")
        if args.total_timesteps is not None and args.total_timesteps < 1:
            raise ConfigError(f"--total-timesteps={args.total_timesteps}: must be >= 1")
        spec_file = load_spec(args.spec)
        seeds = parse_seeds(args.seeds) if args.seeds is not None else spec_file.seeds
        return SweepSpec(algos=spec_file.algos, envs=spec_file.envs, seeds=seeds,
                         total_timesteps=args.total_timesteps or 0, spec_file=spec_file, **common)
    missing = [flag for flag, value in (("--algos", args.algos), ("--envs", args.envs),
                                         ("--total-timesteps", args.total_timesteps)) if value is None]
    if missing:
        raise ConfigError(f"hybridpg sweep: {', '.join(missing)} needed (or a --spec file)")
    return SweepSpec(algos=_split(args.algos), envs=_split(args.envs), seeds=parse_seeds(args.seeds or "5"),
                     total_timesteps=args.total_timesteps, **common)


def handle(args: argparse.Namespace) -> int:
    if args.backend == "local" and args.ray_address:
        raise ConfigError("--ray-address needs --backend ray")
    progress = run_sweep(spec_from_args(args))
    if progress.failed:
        print(f"{progress.failed} run(s) failed; tracebacks are in their error.txt", file=sys.stderr)
        return 1
    return 0
