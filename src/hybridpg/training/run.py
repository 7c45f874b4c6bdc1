"""The run around an agent's learn(): logging, evaluation, checkpoints, progress and signals.

An algorithm's loop calls ``run.safe_point()`` at the top of each iteration (where the agent's
state fully determines the rest of the run), ``run.on_episodes`` when episodes end and
``run.after_update`` after each update. Stops (a signal, a callback, the step budget) and
checkpoints happen only at safe points: one protocol for every algorithm.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import gymnasium as gym
import torch
import yaml

from hybridpg.envs.vector import make_env_fn
from hybridpg.errors import HybridPGError, NonFiniteError
from hybridpg.training.callbacks import Callback, CallbackEvent
from hybridpg.training.checkpoint import atomic_write_bytes
from hybridpg.training.folder import RunLock, remove_stale_temp_files
from hybridpg.training.learner import Learner
from hybridpg.training.logger import MetricLogger, write_error
from hybridpg.training.progress import ProgressBar
from hybridpg.training.versions import environment_record


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM stopped ``learn``; a checkpoint was written first (the CLI exits 128+signal)."""

    def __init__(self, signum: int, step: int, run_dir: Path, seeds: int = 0) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.run_dir = run_dir
        name = signal.Signals(signum).name
        saved = (f"each seed's checkpoint saved to {run_dir / 'seedK' / 'checkpoints' / 'latest.pt'}" if seeds
                 else f"checkpoint saved to {run_dir / 'checkpoints' / 'latest.pt'}")
        super().__init__(
            f"interrupted by {name} at step {step}; {saved}; resume with: hybridpg train --resume "
            f"{shlex.quote(str(run_dir))}"
        )


class StopRun(Exception):
    """A signal cut the final evaluation short (the caller checkpoints and raises ``TrainingInterrupted``)."""


class Run:
    """Everything around the update math: logging, evaluation, checkpoints and progress."""

    def __init__(
        self,
        agent: Learner,
        total: int,
        run_dir: Path | None,
        progress: bool | None,
        stop_at: int | None = None,
        callback: Callback | None = None,
    ) -> None:
        self.agent = agent
        self.callback = callback
        self.callback_stopped = False  # a hook returned False: stop at the next safe point, finish the run
        self._rollout_step = agent.global_step  # global_step at the last rollout_end event
        self.best_eval: float | None = agent.record.best_eval  # best evaluation so far: checkpoints/best.pt
        self.total = total
        self.stop_at = total if stop_at is None else stop_at
        self.run_dir = run_dir
        self.stop_signal: int | None = None
        self._checkpoint_due = False  # written at the next safe point, where the state is complete
        self.safe_points = 0  # calls so far: a loop that never makes one could not be stopped or checkpointed
        self._saved_for_stop = False  # a checkpoint was written after stop_signal was set
        self.finished = False  # summary.json written: the run is complete
        self.summary: dict[str, object] = {}
        if run_dir is not None:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HybridPGError(f"cannot write to run folder {run_dir}: {exc.strerror or exc}") from None
        self.lock = RunLock(run_dir) if run_dir is not None else None
        try:
            if run_dir is not None:
                remove_stale_temp_files(run_dir)  # under the lock: no other writer owns them
                config_doc = {
                    "algo": agent.config.algo,
                    "env": agent.env_id,
                    "seed": agent.seed,
                    "total_timesteps": total,
                    "config": agent.config.to_dict(),
                    "versions": environment_record(),  # what made this run, for reproducing it
                }
                # config.yaml first: once it exists the folder is a run that --resume accepts
                _write_file(run_dir / "config.yaml", yaml.safe_dump(config_doc, sort_keys=False).encode())
                _trim_metrics(agent, run_dir)
            self.logger = MetricLogger(run_dir, purge_step=agent.global_step)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.progress = ProgressBar(self.stop_at, enabled=progress)
        self.progress.start_step = agent.global_step
        self.latest_return: float | None = None
        self.start_time = time.perf_counter()
        self.start_step = agent.global_step
        self.last_log_time = self.start_time
        self.last_log_step = agent.global_step
        self.eval_env: gym.Env | None = None
        # the last evaluation, restored from a checkpoint: decides whether finish() evaluates again
        self.last_eval: dict[str, float] = dict(agent.record.last_eval)
        self.last_eval_at: tuple[int, int] | None = agent.record.last_eval_at  # (env step, updates)

    def on_episodes(self, returns: list[float], lengths: list[int]) -> None:
        step = self.agent.global_step
        for r, n in zip(returns, lengths, strict=True):
            self.latest_return = r
            self.logger.log(step, {"charts/episode_return": r, "charts/episode_length": n})
        self._show_progress()

    def _show_progress(self, force: bool = False) -> None:
        eval_return = self.last_eval.get("eval/return_mean")
        self.progress.update(self.agent.global_step, self.latest_return, force=force, eval_return=eval_return)

    def _fire(self, kind: str, metrics: dict[str, float] | None = None, eval_return: float | None = None) -> None:
        if self.callback is None:
            return
        agent = self.agent
        event = CallbackEvent(kind, agent, agent.global_step, agent.updates, dict(metrics or {}), eval_return)
        if getattr(self.callback, f"on_{kind}")(event) is False:
            self.callback_stopped = True

    def _rollout_end(self) -> None:
        """A batch of env steps was collected since the last event (safe points and updates
        both follow collection, so whichever comes first reports it)."""
        if self.agent.global_step > self._rollout_step:
            self._rollout_step = self.agent.global_step
            self._fire("rollout_end")

    def after_update(self, metrics: dict[str, float]) -> None:
        agent = self.agent
        if not self.safe_points:
            raise HybridPGError(f"{type(agent).__name__}._train must call run.safe_point() at the top of its loop "
                                "(where signals stop the run and checkpoints are written)")
        self._rollout_end()
        self._fire("update", metrics)
        now = time.perf_counter()
        sps = (agent.global_step - self.last_log_step) / max(now - self.last_log_time, 1e-9)
        self.last_log_time, self.last_log_step = now, agent.global_step
        metrics = {**metrics, "time/sps": sps}
        cfg = agent.config
        diverged = _non_finite_weights(agent)
        if self._evaluation_due() and not diverged:
            metrics.update(self.evaluate())
        self.logger.log(agent.global_step, metrics)
        if diverged:  # stop before a checkpoint could store the broken weights
            where = self.run_dir / "checkpoints" if self.run_dir is not None else None
            kept = f"; the last good checkpoint is kept in {where}" if where is not None else ""
            raise NonFiniteError(f"training diverged at env step {agent.global_step} (update {agent.updates}): "
                                 f"non-finite weights in {diverged}{kept}")
        self._show_progress()  # also for loops whose episodes end rarely
        if self.run_dir is not None and cfg.checkpoint_freq and agent.updates % cfg.checkpoint_freq == 0:
            self._checkpoint_due = True

    def _evaluation_due(self) -> bool:
        """Every eval_freq updates, or (eval_every > 0) once the step count enters a new eval_every
        fraction of the budget; a resumed run counts from its last evaluation, so it keeps the schedule."""
        cfg, agent = self.agent.config, self.agent
        if cfg.eval_every > 0:
            spacing = cfg.eval_every * self.total
            last = self.last_eval_at[0] if self.last_eval_at is not None else 0
            return agent.global_step // spacing > last // spacing
        return bool(cfg.eval_freq) and agent.updates % cfg.eval_freq == 0

    def safe_point(self) -> bool:
        """Call at the top of the training loop, where the agent's state fully determines the rest
        of the run. Writes a due checkpoint; True means stop now (signal, or this call's steps done)."""
        self.safe_points += 1
        self._rollout_end()
        if self.agent.config.eval_every > 0 and self._evaluation_due():  # loops that update rarely (SAC warm-up)
            self.logger.log(self.agent.global_step, self.evaluate())
        if self._checkpoint_due or (self.stop_signal is not None and self.run_dir is not None):
            self._checkpoint_due = False
            self.save_latest()
            self._saved_for_stop = self.stop_signal is not None
        return self._should_stop()

    def save_for_stop(self) -> None:
        """After a signal: make sure latest.pt holds the state the loop stopped in. Called only
        at a loop boundary (the loop returned, or the final evaluation was cut short)."""
        if self.run_dir is not None and not self._saved_for_stop:
            self.save_latest()
            self._saved_for_stop = True

    def _should_stop(self) -> bool:
        return self.stop_signal is not None or self.callback_stopped or self.agent.global_step >= self.stop_at

    def save_latest(self) -> None:
        """checkpoints/latest.pt, with metrics.jsonl flushed first so the two agree on resume."""
        if self.run_dir is None:
            return
        self.logger.flush()
        metrics = self.run_dir / "metrics.jsonl"
        record = self.agent.record
        record.metrics_bytes = metrics.stat().st_size if metrics.exists() else 0
        record.last_eval, record.last_eval_at = dict(self.last_eval), self.last_eval_at
        self.agent.save(self.run_dir / "checkpoints" / "latest.pt")

    def evaluate(self, stoppable: bool = False) -> dict[str, float]:
        """Evaluate the current policy; ``stoppable`` (the final evaluation only, where no update
        follows) lets a signal cut it short with ``StopRun``, logging nothing."""
        from hybridpg.training.evaluate import EvaluationStopped, evaluate

        if self.eval_env is None:
            self.eval_env = (
                make_env_fn(self.agent.env_spec, **self.agent.config.env_kwargs)()
                if not isinstance(self.agent.env_spec, gym.Env)
                else copy.deepcopy(self.agent.env_spec)
            )
        n_episodes, seed = self.agent.config.eval_episodes, self.agent.seed + 10_000
        stop = (lambda: self.stop_signal is not None) if stoppable else None
        try:
            result = evaluate(self.agent, self.eval_env, n_episodes, seed=seed, stop=stop)
        except EvaluationStopped:
            raise StopRun from None
        self.last_eval = {"eval/return_mean": result.mean, "eval/return_std": result.std}
        self.last_eval_at = (self.agent.global_step, self.agent.updates)
        self._save_best(result.mean)
        self._fire("eval", self.last_eval, result.mean)
        return self.last_eval

    def _save_best(self, mean: float) -> None:
        """checkpoints/best.pt: the policy with the best evaluation so far (for inference; a
        resume continues from latest.pt)."""
        if self.best_eval is not None and mean <= self.best_eval:
            return
        self.best_eval = self.agent.record.best_eval = mean
        if self.run_dir is not None:
            self.agent.save(self.run_dir / "checkpoints" / "best.pt")

    def finish(self) -> None:
        """The final evaluation, latest.pt, final.pt and summary.json; a signal during the
        evaluation raises ``StopRun`` (the caller checkpoints; ``--resume`` finishes later)."""
        agent = self.agent
        stopped = self.callback_stopped and agent.global_step < self.total
        if agent.global_step < self.total and not stopped:
            # a planned pause inside the horizon: a checkpoint, no final evaluation or summary
            self.save_latest()
            self._show_progress(force=True)
            return
        # already evaluated at this state: by the loop, or by a finish() that died before summary.json
        evaluated = self.last_eval_at == (agent.global_step, agent.updates)
        periodic = agent.config.eval_every == 0 and agent.config.eval_freq and self.last_eval
        if not evaluated and (not periodic or agent.updates % agent.config.eval_freq):
            self.logger.log(agent.global_step, self.evaluate(stoppable=True))
        if self.stop_signal is not None:
            raise StopRun
        wall = time.perf_counter() - self.start_time
        steps = agent.global_step - self.start_step
        summary: dict[str, object] = {
            # stopped: a callback ended training early; --resume continues it to total_timesteps
            "status": "stopped" if stopped else "finished",
            "algo": agent.config.algo,
            "env": agent.env_id,
            "seed": agent.seed,
            "global_step": agent.global_step,
            "updates": agent.updates,
            "eval_return_mean": self.last_eval.get("eval/return_mean"),
            # None when this process only finished a run whose training was already done
            "sps": steps / max(wall, 1e-9) if steps else None,
            "wall_seconds": wall,
            "versions": environment_record(),
        }
        self.summary = summary
        if self.run_dir is not None:
            self.save_latest()
            agent.save(self.run_dir / "checkpoints" / "final.pt")
            _write_file(self.run_dir / "summary.json", json.dumps(summary, indent=2).encode())
        self.finished = True
        self._show_progress(force=True)

    def close(self) -> None:
        try:
            self.progress.close()
            self.logger.close()
            if self.eval_env is not None:
                self.eval_env.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def _write_file(path: Path, data: bytes) -> None:
    """atomic_write_bytes with a full disk or read-only folder reported as one error line."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise write_error(path, exc) from None


@contextlib.contextmanager
def stop_on_signals(*runs: Run) -> Iterator[None]:
    """SIGINT/SIGTERM ask the runs (several: seeds trained in one process) to checkpoint and stop at
    their next safe point; a second signal interrupts at once. Only with run folders (nowhere to
    save otherwise) and in the main thread."""
    if all(run.run_dir is None for run in runs) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        if runs[0].stop_signal is not None:
            raise KeyboardInterrupt
        for run in runs:
            run.stop_signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _trim_metrics(agent: Learner, run_dir: Path) -> None:
    """Drop metrics.jsonl lines written after the checkpoint being resumed (a crash between
    checkpoints would otherwise log that stretch twice)."""
    size, origin = agent.record.metrics_bytes, agent.record.loaded_from
    metrics = run_dir / "metrics.jsonl"
    if size is None or origin is None or not metrics.exists():
        return
    if os.path.realpath(origin) != os.path.realpath(run_dir):
        return
    if metrics.stat().st_size > size:
        with open(metrics, "r+b") as f:
            f.truncate(size)
    agent.record.loaded_from = None  # trim once


def _non_finite_weights(agent: Learner) -> str:
    """The name of the first network attribute of ``agent`` holding a NaN or inf weight, else ''."""
    for name, value in vars(agent).items():
        if isinstance(value, torch.nn.Module):
            for param in value.parameters():
                if not bool(torch.isfinite(param).all()):
                    return name
    return ""
