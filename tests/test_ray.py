"""The Ray Tune backend against a real local Ray instance (ray.init(num_cpus=2))."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridpg.experiments.runs import RunSpec, run_dir_for, run_state, train_run
from hybridpg.experiments.sweep import SweepSpec, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PPO_TINY = {"n_steps": "128", "n_minibatches": "4", "eval_freq": "2",
        "eval_episodes": "2", "checkpoint_freq": "1"}
TINY = {**PPO_TINY, "behavior_steps": "64"}  # PROPS collects in chunks of m; PPO has no such field
BUDGET = 512


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'hybridpg[ray]')")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 (any reason Ray cannot start on this machine)
        pytest.skip(f"a local Ray instance could not start: {exc}")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_sweep(ray_instance: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from hybridpg.experiments.ray_backend import run_ray
    from hybridpg.experiments.runs import SweepProgress
    from hybridpg.experiments.sweep import write_sweep_file

    root = tmp_path_factory.mktemp("ray-sweep").resolve()
    spec = SweepSpec(["ppo", "props"], ["CartPole-v1"], [0, 1], BUDGET, dict(TINY), root, workers=2,
                     backend="ray")
    write_sweep_file(spec)
    # one extra run that PROPS rejects (b >= 2): it must fail alone, without retries or stopping others
    bad = RunSpec("props", "CartPole-v1", 9, BUDGET, str(run_dir_for(root, "CartPole-v1", "props", 9)),
                  {**TINY, "buffer_batches": "1"})
    runs = [*spec.runs(), bad]
    progress = SweepProgress(len(runs), stream=io.StringIO(), tty=False)
    run_ray(runs, spec, progress)
    return root, progress


def test_ray_sweep_finishes_every_run_and_isolates_the_failure(ray_sweep: tuple[Path, object]) -> None:
    root, progress = ray_sweep
    assert (progress.done, progress.failed, progress.running) == (4, 1, 0)  # type: ignore[attr-defined]
    failed = [r for r in progress.results if r.status == "failed"]  # type: ignore[attr-defined]
    assert failed[0].name == "CartPole-v1/props/seed9" and "PROPS needs b >= 2" in str(failed[0].error)
    for algo in ("ppo", "props"):
        for seed in (0, 1):
            summary = json.loads((run_dir_for(root, "CartPole-v1", algo, seed) / "summary.json").read_text())
            assert summary["status"] == "finished" and summary["global_step"] == BUDGET


def test_ray_reports_a_monotone_step_counter_with_checkpoints(ray_sweep: tuple[Path, object]) -> None:
    root, _ = ray_sweep
    trial_dir = root / ".ray" / "tune" / "CartPole-v1_ppo_seed0"
    reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    steps = [r["env_steps"] for r in reports]
    assert len(steps) >= 2 and steps[-1] == BUDGET and reports[-1]["finished"] == 1
    # strictly increasing while training; the closing report (finished=1) may repeat the last step
    assert all(b > a for a, b in zip(steps[:-2], steps[1:-1], strict=True)) and steps[-1] >= steps[-2]
    assert all(r["finished"] == 0 for r in reports[:-1])
    assert list(trial_dir.glob("checkpoint_*/latest.pt"))


def test_same_results_as_the_local_backend(ray_sweep: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = ray_sweep
    run = RunSpec("ppo", "CartPole-v1", 1, BUDGET, str(tmp_path / "local"), dict(PPO_TINY))
    local = train_run(run)
    remote = json.loads((run_dir_for(root, "CartPole-v1", "ppo", 1) / "summary.json").read_text())
    assert local.eval_return == remote["eval_return_mean"]


def test_a_tune_checkpoint_restores_a_run_on_a_node_without_its_folder(
    ray_sweep: tuple[Path, object], tmp_path: Path
) -> None:
    from ray import tune

    from hybridpg.experiments.ray_backend import restore_from_checkpoint_dir

    root, _ = ray_sweep
    trial_dir = root / ".ray" / "tune" / "CartPole-v1_props_seed0"
    checkpoint = tune.Checkpoint.from_directory(str(sorted(trial_dir.glob("checkpoint_*"))[-1]))
    fresh = tmp_path / "elsewhere"
    with checkpoint.as_directory() as directory:
        assert restore_from_checkpoint_dir(Path(directory), fresh)
        assert not restore_from_checkpoint_dir(Path(directory), fresh)  # not ahead of the folder any more
    assert run_state(fresh) == "resume"


def test_cli_ray_backend_on_the_running_instance(ray_instance: None, tmp_path: Path) -> None:
    spec = SweepSpec(["ppo"], ["CartPole-v1"], [0], 256, dict(PPO_TINY), tmp_path.resolve(), workers=1, backend="ray")
    progress = run_sweep(spec, stream=io.StringIO(), tty=False)
    assert (progress.done, progress.failed) == (1, 0)
    # the rerun skips it without starting a trial
    assert run_sweep(spec, stream=io.StringIO(), tty=False).skipped == 1
