"""``hybridpg sweep --backend ray``: every run is a Ray Tune trial of one function trainable.

Ray is an optional extra (``pip install hybridpg[ray]``); it is imported inside these functions
only, so the rest of the package never needs it.

Why a training thread instead of ``learn()`` called in chunks: ``learn(k, reset=False)`` treats its
target as the end of training (the learning-rate schedule anneals to it, a final evaluation and
``summary.json`` are written), so chunked calls would train differently from the local backend.
The trainable therefore runs one ``learn`` to the full budget in a thread, exactly as the local
backend does, and the trial's main thread reports each new ``checkpoints/latest.pt`` (written every
``checkpoint_freq`` updates): the chunks are the checkpoint intervals. Every report carries a
strictly increasing ``env_steps`` (only the closing ``finished=1`` report may repeat the last one)
and that checkpoint, so a retried trial (``FailureConfig``) or a
restored experiment continues from ``tune.get_checkpoint()`` instead of step 0.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from hybridpg.errors import ConfigError, HybridPGError
from hybridpg.experiments.runs import RunResult, RunSpec, SweepProgress, record_failure, run_state, train_run

CHECKPOINT_FILE = "latest.pt"
# a crashed trial (not a user error) is retried this many times from its last checkpoint
MAX_FAILURES = 2


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'hybridpg[ray]'") from None
    return ray


def _checkpoint_step(path: Path) -> int:
    from hybridpg.training.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["global_step"])


def restore_from_checkpoint_dir(checkpoint_dir: Path, run_dir: Path) -> bool:
    """Put a Tune checkpoint's agent state into the run folder if it is ahead of the folder's own.

    On one machine the run folder usually has the same or a newer checkpoint; on a cluster the trial
    may be retried on a node that has none. Returns True when the run folder was updated.
    """
    source = checkpoint_dir / CHECKPOINT_FILE
    if not source.exists() or run_state(run_dir) == "finished":
        return False
    target = run_dir / "checkpoints" / CHECKPOINT_FILE
    if target.exists() and _checkpoint_step(target) >= _checkpoint_step(source):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".restore.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return True


class _Reporter:
    """Reports each new checkpoint of a run folder to Tune with a strictly increasing step count."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.last_step = -1
        self.last_mtime = 0.0

    def poll(self, final: bool = False) -> None:
        from ray import tune

        latest = self.run_dir / "checkpoints" / CHECKPOINT_FILE
        if not latest.exists():
            return
        mtime = latest.stat().st_mtime
        if mtime == self.last_mtime and not final:
            return
        with tempfile.TemporaryDirectory(prefix="hybridpg-tune-") as tmp:
            # copy first: the training thread may atomically replace latest.pt while we read it
            copy = Path(tmp) / CHECKPOINT_FILE
            shutil.copyfile(latest, copy)
            step = _checkpoint_step(copy)
            if step <= self.last_step and not (final and step == self.last_step):
                return
            self.last_mtime = mtime
            self.last_step = step
            metrics: dict[str, Any] = {"env_steps": step, "finished": int(final), "failed": 0}
            eval_return = _latest_eval(self.run_dir)
            if eval_return is not None:
                metrics["eval_return"] = eval_return
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _latest_eval(run_dir: Path) -> float | None:
    from hybridpg.training.logger import read_metrics

    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    evals = [r["eval/return_mean"] for r in read_metrics(path) if "eval/return_mean" in r]
    return float(evals[-1]) if evals else None


def ray_trainable(config: dict[str, Any]) -> None:
    """Tune function trainable; ``config["run"]`` is a :class:`RunSpec` as a dict."""
    from ray import tune

    spec = RunSpec.from_dict(config["run"])
    run_dir = Path(spec.run_dir)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            restore_from_checkpoint_dir(Path(directory), run_dir)

    outcome: dict[str, Any] = {}

    def train() -> None:
        try:
            outcome["result"] = train_run(spec)
        except BaseException as exc:  # noqa: BLE001 (handed to the trial thread below)
            outcome["error"] = exc

    thread = threading.Thread(target=train, name=f"hybridpg-{spec.name}", daemon=True)
    thread.start()
    reporter = _Reporter(run_dir)
    while thread.is_alive():
        thread.join(timeout=float(config.get("report_interval_s", 2.0)))
        reporter.poll()
    error = outcome.get("error")
    if error is None:
        reporter.poll(final=True)
        return
    failure = record_failure(spec, error)
    if isinstance(error, HybridPGError):
        # a user error fails the same way every time: finish the trial as failed instead of retrying
        tune.report({"env_steps": max(reporter.last_step, 0), "finished": 0, "failed": 1,
                     "error": failure.error})
        return
    raise error


class _ProgressCallback:
    """Feeds Tune's trial events into the sweep's progress view (built lazily: needs ray.tune)."""

    @staticmethod
    def create(progress: SweepProgress) -> Any:
        from ray import tune

        class Callback(tune.Callback):
            def __init__(self) -> None:
                self.running: set[str] = set()

            def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                if trial.trial_id not in self.running:
                    self.running.add(trial.trial_id)
                    progress.started(RunSpec.from_dict(trial.config["run"]).name)

            def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                spec = RunSpec.from_dict(trial.config["run"])
                last = trial.last_result or {}
                if last.get("failed"):
                    result = RunResult(spec.name, "failed", error=str(last.get("error")))
                else:
                    result = RunResult(spec.name, "finished", eval_return=last.get("eval_return"),
                                       wall_seconds=float(last.get("time_total_s", 0.0)))
                self._done(trial, result)

            def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                spec = RunSpec.from_dict(trial.config["run"])
                self._done(trial, RunResult(spec.name, "failed", error=_error_line(Path(spec.run_dir))))

            def _done(self, trial: Any, result: RunResult) -> None:
                was_running = trial.trial_id in self.running
                self.running.discard(trial.trial_id)
                progress.finished(result, was_running=was_running)

        return Callback()


def _error_line(run_dir: Path) -> str:
    try:
        lines = [line for line in (run_dir / "error.txt").read_text().splitlines() if line.strip()]
    except OSError:
        return "trial failed (no error.txt; see the Ray logs)"
    return lines[-1] if lines else "trial failed"


def _trial_dirname(trial: Any) -> str:
    spec = RunSpec.from_dict(trial.config["run"])
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{spec.env}_{spec.algo}_seed{spec.seed}")


def run_ray(runs: list[RunSpec], spec: Any, progress: SweepProgress) -> None:
    """Run ``runs`` as Tune trials on ``spec.ray_address`` (or a local Ray started for the sweep).

    ``spec`` is the sweep's ``SweepSpec`` (its root, workers, ray_address and cpus_per_run).
    """
    # Tune warns on every frequent checkpoint sync; our checkpoints are small and frequent on purpose
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray = _import_ray()
    from ray import tune

    started_here = False
    if not ray.is_initialized():
        # worker stdout is Ray's checkpoint chatter; a failing run's traceback goes to its error.txt
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                                   "log_to_driver": False}
        if spec.ray_address:
            options["address"] = spec.ray_address
        else:
            options["num_cpus"] = max(int(spec.workers * spec.cpus_per_run), 1)
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot start or reach Ray ({spec.ray_address or 'local'}): {exc}") from None
        started_here = True
    try:
        trainable = tune.with_resources(ray_trainable, {"cpu": spec.cpus_per_run})
        tuner = tune.Tuner(
            trainable,
            param_space={"run": tune.grid_search([run.to_dict() for run in runs])},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=spec.workers,
                trial_dirname_creator=_trial_dirname,
                trial_name_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(spec.root / ".ray"),
                verbose=0,
                callbacks=[_ProgressCallback.create(progress)],
                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
