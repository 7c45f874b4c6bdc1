"""One run of a sweep, as plain records shared by the sweep and its backends (process pool, Ray).

A run is a ``RunSpec`` (plain data, so it crosses process and Ray boundaries as a dict); training
it (or resuming, or skipping a finished one) gives a ``RunResult``; ``SweepProgress`` counts them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hybridpg.errors import HybridPGError


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep; plain data so it crosses process and Ray boundaries as a dict."""

    algo: str
    env: str
    seed: int
    total_timesteps: int
    run_dir: str
    overrides: dict[str, Any] = field(default_factory=dict)
    #: (seed, run folder) of every seed trained together in this one process; empty: just ``seed``
    batch: list[tuple[int, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.batch:
            return f"{self.env}/{self.algo}/seeds{','.join(str(seed) for seed, _ in self.batch)}"
        return f"{self.env}/{self.algo}/seed{self.seed}"

    def folders(self) -> list[Path]:
        return [Path(d) for _, d in self.batch] if self.batch else [Path(self.run_dir)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSpec:
        return cls(**values)


@dataclass
class RunResult:
    name: str
    status: str  # finished | skipped | failed
    error: str | None = None
    resumed: bool = False
    eval_return: float | None = None
    wall_seconds: float = 0.0



def run_dir_for(root: Path, env: str, algo: str, seed: int) -> Path:
    # namespaced ids like "hybridpg/TwoStep-v0" must not create nested folders
    return root / env.replace("/", "_") / algo / f"seed{seed}"


def run_state(run_dir: Path) -> str:
    """``finished`` (summary says so), ``resume`` (has a latest checkpoint) or ``new``."""
    summary = run_dir / "summary.json"
    if summary.exists():
        try:
            if json.loads(summary.read_text()).get("status") == "finished":
                return "finished"
        except (OSError, json.JSONDecodeError):
            pass
    if (run_dir / "checkpoints" / "latest.pt").exists():
        return "resume"
    return "new"



# -- one run (executed in a worker process or a Ray trial) ------------------------------------------


def train_run(spec: RunSpec, on_agent: Callable[[Any], None] | None = None) -> RunResult:
    """Train (or resume, or skip) one run; errors propagate. ``on_agent`` sees the agent before training."""
    from hybridpg.algorithms import ALGORITHMS
    from hybridpg.algorithms.base import Agent

    if spec.batch:
        return train_seed_batch(spec)
    start = time.perf_counter()
    run_dir = Path(spec.run_dir)
    state = run_state(run_dir)
    if state == "finished":
        return RunResult(spec.name, "skipped", eval_return=summary_return(run_dir))
    if state == "resume":
        agent = Agent.load(run_dir / "checkpoints" / "latest.pt")
        remaining = spec.total_timesteps - agent.global_step
    else:
        # a folder without a checkpoint holds only a dead attempt's logs; start clean so metrics
        # from that attempt are not appended to
        if run_dir.exists():
            shutil.rmtree(run_dir)
        overrides: dict[str, Any] = dict(spec.overrides)
        agent = ALGORITHMS[spec.algo](spec.env, seed=spec.seed, **overrides)
        remaining = spec.total_timesteps
    try:
        if on_agent is not None:
            on_agent(agent)
        if remaining < 1:  # stopped after its last checkpoint, before summary.json: evaluate and finish it
            agent.finish_run(run_dir, progress=False)
        else:
            agent.learn(remaining, run_dir=run_dir, progress=False, reset=state != "resume")
    finally:
        agent.close()
    (run_dir / "error.txt").unlink(missing_ok=True)
    return RunResult(spec.name, "finished", resumed=state == "resume", eval_return=summary_return(run_dir),
                     wall_seconds=time.perf_counter() - start)


def train_seed_batch(spec: RunSpec) -> RunResult:
    """Train (or resume, or skip) the seeds of ``spec.batch`` together in this process; seeds whose
    folders are in different states (a partly finished batch) continue one after another instead."""
    from hybridpg.algorithms import ALGORITHMS, OnPolicyAgent
    from hybridpg.algorithms.seed_batch import SeedBatch
    from hybridpg.errors import ConfigError

    algo_cls = ALGORITHMS[spec.algo]
    assert issubclass(algo_cls, OnPolicyAgent)  # SweepSpec.runs groups on-policy seeds only

    start = time.perf_counter()
    dirs = spec.folders()
    states = {run_state(d) for d in dirs}
    members = [RunSpec(spec.algo, spec.env, seed, spec.total_timesteps, d, spec.overrides) for seed, d in spec.batch]
    if states == {"finished"}:
        return RunResult(spec.name, "skipped", eval_return=_mean_return(dirs))
    batch = None
    if states == {"new"}:
        for d in dirs:  # only a dead attempt's logs: start clean
            if d.exists():
                shutil.rmtree(d)
        batch = SeedBatch.create(algo_cls, spec.env, [seed for seed, _ in spec.batch], **spec.overrides)
    elif states == {"resume"}:
        with contextlib.suppress(ConfigError):  # checkpoints at different steps: one by one below
            batch = SeedBatch.load([d / "checkpoints" / "latest.pt" for d in dirs])
    if batch is None:
        for member in members:
            train_run(member)
    else:
        try:
            remaining = spec.total_timesteps - batch.global_step
            if remaining < 1:  # stopped after the last checkpoint, before summary.json
                for agent, d in zip(batch.agents, dirs, strict=True):
                    agent.finish_run(d, progress=False)
            else:
                batch.learn(remaining, run_dirs=dirs, progress=False, reset=states == {"new"})
        finally:
            batch.close()
    for d in dirs:
        (d / "error.txt").unlink(missing_ok=True)
    return RunResult(spec.name, "finished", resumed="resume" in states, eval_return=_mean_return(dirs),
                     wall_seconds=time.perf_counter() - start)


def _mean_return(dirs: list[Path]) -> float | None:
    returns = [r for r in (summary_return(d) for d in dirs) if r is not None]
    return sum(returns) / len(returns) if returns else None


def one_line_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, HybridPGError) else f"{type(exc).__name__}: {message}"


def record_failure(spec: RunSpec, exc: BaseException) -> RunResult:
    """Save the traceback next to the run and return the one-line error."""
    for run_dir in spec.folders():
        if run_state(run_dir) == "finished":  # a seed of a group that finished before another failed
            continue
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text("".join(traceback.format_exception(exc)))
        except OSError:
            pass
    return RunResult(spec.name, "failed", error=one_line_error(exc))


def execute_run(values: dict[str, Any]) -> RunResult:
    """Worker entry point: never raises, so one bad run cannot take the pool down."""
    spec = RunSpec.from_dict(values)
    try:
        return train_run(spec)
    except Exception as exc:  # noqa: BLE001 (any failure of one run is reported, not fatal)
        return record_failure(spec, exc)


def summary_return(run_dir: Path) -> float | None:
    try:
        value = json.loads((run_dir / "summary.json").read_text()).get("eval_return_mean")
    except (OSError, json.JSONDecodeError):
        return None
    return None if value is None else float(value)


def init_worker() -> None:
    # each worker is one run on one core; intra-op threads would oversubscribe the machine
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


# -- progress ---------------------------------------------------------------------------------------


class SweepProgress:
    """done / running / failed counts: one updating line on a terminal, plain lines otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = total
        self.done = self.skipped = self.failed = self.running = 0
        self.start = time.perf_counter()
        self.results: list[RunResult] = []

    def status(self) -> str:
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - self.start))
        return (f"[sweep] {self.done + self.skipped}/{self.total} done ({self.skipped} skipped) | "
                f"{self.running} running | {self.failed} failed | {elapsed}")

    def started(self, name: str) -> None:
        self.running += 1
        self._emit(None if self.tty else f"[sweep] start {name}")

    def finished(self, result: RunResult, was_running: bool = True) -> None:
        self.results.append(result)
        if was_running:
            self.running = max(self.running - 1, 0)
        if result.status == "failed":
            self.failed += 1
            self._emit(f"[sweep] FAILED {result.name}: {result.error}", always=True)
            return
        if result.status == "skipped":
            self.skipped += 1
            detail = "already finished"
        else:
            self.done += 1
            ret = "n/a" if result.eval_return is None else f"{result.eval_return:.1f}"
            detail = f"{'resumed, ' if result.resumed else ''}eval return {ret}, {result.wall_seconds:.1f}s"
        self._emit(None if self.tty else f"[sweep] {result.status} {result.name} ({detail})")

    def _emit(self, line: str | None, always: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            if line is not None:
                self.stream.write(line + "\n")
            self.stream.write(self.status())
        elif line is not None:
            self.stream.write(f"{line} -- {self.status()}\n" if not always else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        else:
            self.stream.write(self.status() + "\n")
        self.stream.flush()
