"""The run around an agent's learn(): logging, evaluation, checkpoints, progress and signals.

An algorithm's loop calls ``run.safe_point()`` at the top of each iteration (where the agent's
state fully determines the rest of the run), ``run.on_episodes`` when episodes end and
``run.after_update`` after each update.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import gymnasium as gym
import yaml

from hybridpg.envs.vector import make_env_fn
from hybridpg.training.checkpoint import atomic_write_bytes
from hybridpg.training.logger import MetricLogger
from hybridpg.training.progress import ProgressBar

if TYPE_CHECKING:
    from hybridpg.algorithms.base import Agent


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM stopped ``learn``; a checkpoint was written first (the CLI exits 128+signal)."""

    def __init__(self, signum: int, step: int, run_dir: Path) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.run_dir = run_dir
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name} at step {step}; checkpoint saved to "
            f"{run_dir / 'checkpoints' / 'latest.pt'}; resume with: hybridpg train --resume {run_dir}"
        )


class _StopRun(Exception):
    """Raised from ``Run.after_update`` to leave loops that do not call ``Run.safe_point``."""


class Run:
    """Everything around the update math: logging, evaluation, checkpoints and progress."""

    def __init__(
        self,
        agent: Agent,
        total: int,
        run_dir: Path | None,
        progress: bool | None,
        stop_at: int | None = None,
    ) -> None:
        self.agent = agent
        self.total = total
        self.stop_at = total if stop_at is None else stop_at
        self.run_dir = run_dir
        self.stop_signal: int | None = None
        # loops that call safe_point() get checkpoints at loop boundaries only; others in after_update
        self._uses_safe_points = False
        self._checkpoint_due = False
        if run_dir is not None:
            _trim_metrics(agent, run_dir)
            # temp files of checkpoint writes that a kill interrupted; the checkpoints are intact
            for stale in (run_dir / "checkpoints").glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        self.logger = MetricLogger(run_dir, purge_step=agent.global_step)
        self.progress = ProgressBar(self.stop_at, enabled=progress)
        self.progress.start_step = agent.global_step
        self.latest_return: float | None = None
        self.start_time = time.perf_counter()
        self.start_step = agent.global_step
        self.last_log_time = self.start_time
        self.last_log_step = agent.global_step
        self.eval_env: gym.Env | None = None
        self.last_eval: dict[str, float] = {}
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            config_doc = {
                "algo": agent.config.algo,
                "env": agent.env_id,
                "seed": agent.seed,
                "total_timesteps": total,
                "config": agent.config.to_dict(),
            }
            atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config_doc, sort_keys=False).encode())

    def on_episodes(self, returns: list[float], lengths: list[int]) -> None:
        step = self.agent.global_step
        for r, n in zip(returns, lengths, strict=True):
            self.latest_return = r
            self.logger.log(step, {"charts/episode_return": r, "charts/episode_length": n})
        self.progress.update(step, self.latest_return)

    def after_update(self, metrics: dict[str, float]) -> None:
        agent = self.agent
        now = time.perf_counter()
        sps = (agent.global_step - self.last_log_step) / max(now - self.last_log_time, 1e-9)
        self.last_log_time, self.last_log_step = now, agent.global_step
        metrics = {**metrics, "time/sps": sps}
        cfg = agent.config
        if cfg.eval_freq and agent.updates % cfg.eval_freq == 0:
            metrics.update(self.evaluate())
        self.logger.log(agent.global_step, metrics)
        if self.run_dir is not None and cfg.checkpoint_freq and agent.updates % cfg.checkpoint_freq == 0:
            if self._uses_safe_points:
                self._checkpoint_due = True
            else:
                self.save_latest()
        if not self._uses_safe_points and self._should_stop():
            if self.stop_signal is not None:
                self.save_latest()
            raise _StopRun

    def safe_point(self) -> bool:
        """Call at the top of the training loop, where the agent's state fully determines the rest
        of the run. Writes a due checkpoint; True means stop now (signal, or this call's steps done)."""
        self._uses_safe_points = True
        if self._checkpoint_due or (self.stop_signal is not None and self.run_dir is not None):
            self._checkpoint_due = False
            self.save_latest()
        return self._should_stop()

    def _should_stop(self) -> bool:
        return self.stop_signal is not None or self.agent.global_step >= self.stop_at

    def save_latest(self) -> None:
        """checkpoints/latest.pt, with metrics.jsonl flushed first so the two agree on resume."""
        if self.run_dir is None:
            return
        self.logger.flush()
        metrics = self.run_dir / "metrics.jsonl"
        self.agent._metrics_bytes = metrics.stat().st_size if metrics.exists() else 0
        self.agent.save(self.run_dir / "checkpoints" / "latest.pt")

    def evaluate(self) -> dict[str, float]:
        from hybridpg.training.evaluate import evaluate

        if self.eval_env is None:
            self.eval_env = (
                make_env_fn(self.agent.env_spec, **self.agent.config.env_kwargs)()
                if not isinstance(self.agent.env_spec, gym.Env)
                else copy.deepcopy(self.agent.env_spec)
            )
        n_episodes, seed = self.agent.config.eval_episodes, self.agent.seed + 10_000
        result = evaluate(self.agent, self.eval_env, n_episodes, seed=seed)
        self.last_eval = {"eval/return_mean": result.mean, "eval/return_std": result.std}
        return self.last_eval

    def finish(self) -> None:
        agent = self.agent
        if agent.global_step < self.total:
            # a planned pause inside the horizon: a checkpoint, no final evaluation or summary
            self.save_latest()
            self.progress.update(agent.global_step, self.latest_return, force=True)
            return
        if not self.last_eval or agent.config.eval_freq == 0 or agent.updates % agent.config.eval_freq:
            self.logger.log(agent.global_step, self.evaluate())
        wall = time.perf_counter() - self.start_time
        summary = {
            "status": "finished",
            "algo": agent.config.algo,
            "env": agent.env_id,
            "seed": agent.seed,
            "global_step": agent.global_step,
            "updates": agent.updates,
            "eval_return_mean": self.last_eval.get("eval/return_mean"),
            "sps": (agent.global_step - self.start_step) / max(wall, 1e-9),
            "wall_seconds": wall,
        }
        self.summary = summary
        if self.run_dir is not None:
            self.save_latest()
            agent.save(self.run_dir / "checkpoints" / "final.pt")
            atomic_write_bytes(self.run_dir / "summary.json", json.dumps(summary, indent=2).encode())
        self.progress.update(agent.global_step, self.latest_return, force=True)

    def close(self) -> None:
        self.progress.close()
        self.logger.close()
        if self.eval_env is not None:
            self.eval_env.close()


@contextlib.contextmanager
def _stop_on_signals(run: Run) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to checkpoint and stop at its next safe point; a second signal
    interrupts at once. Only with a run folder (nowhere to save otherwise) and in the main thread."""
    if run.run_dir is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        if run.stop_signal is not None:
            raise KeyboardInterrupt
        run.stop_signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _trim_metrics(agent: Agent, run_dir: Path) -> None:
    """Drop metrics.jsonl lines written after the checkpoint being resumed (a crash between
    checkpoints would otherwise log that stretch twice)."""
    size, origin = agent._metrics_bytes, agent._loaded_from
    metrics = run_dir / "metrics.jsonl"
    if size is None or origin is None or not metrics.exists():
        return
    if os.path.realpath(origin) != os.path.realpath(run_dir):
        return
    if metrics.stat().st_size > size:
        with open(metrics, "r+b") as f:
            f.truncate(size)
    agent._loaded_from = None  # trim once
