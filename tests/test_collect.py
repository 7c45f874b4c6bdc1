"""`hybridpg collect`: Minari round trip, training from the dataset, one-line errors."""

from __future__ import annotations

from pathlib import Path

import minari
import numpy as np
import pytest

from hybridpg import cli

LOCK = "hybridpg/CombinationLock-v0"


@pytest.fixture(autouse=True)
def only_collect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # other subcommand modules are not this file's concern
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ["hybridpg.cli.collect"])
    root = tmp_path / "datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _collect(*extra: str) -> int:
    return cli.main(["collect", "--env", LOCK, "--policy", "lock-optimal", "--episodes", "20", *extra])


def _one_error_line(capsys: pytest.CaptureFixture[str], needle: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_round_trip_then_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _collect("--dataset-id", "lock-opt-v0", "--seed", "3") == 0
    data = minari.load_dataset("lock-opt-v0")
    assert data.total_episodes == 20 and data.total_steps == 100  # the lock lasts exactly H = 5 steps
    episodes = list(data.iterate_episodes())
    # epsilon = 0: the scripted policy opens the lock in every episode
    assert all(float(np.sum(e.rewards)) == 1.0 for e in episodes)
    assert data.spec.env_spec is not None and data.spec.env_spec.id == LOCK
    run = tmp_path / "run"
    rc = cli.main(["train", "--algo", "ppo", "--env", LOCK, "--offline-dataset", "lock-opt-v0", "--bc-steps", "200",
                   "--total-timesteps", "128", "--n-steps", "128", "--n-minibatches", "4",
                   "--eval-episodes", "5", "--run-dir", str(run), "--progress", "off"])
    assert rc == 0
    assert (run / "checkpoints" / "final.pt").exists()
    # 200 BC steps on perfect data already open the lock at H = 5
    assert "eval return 1.0" in capsys.readouterr().out


def test_env_kwargs_reach_the_dataset_metadata() -> None:
    assert _collect("--dataset-id", "lock3-v0", "--env-kwarg", "horizon=3", "--epsilon", "1") == 0
    data = minari.load_dataset("lock3-v0")
    assert data.spec.env_spec is not None and data.spec.env_spec.kwargs == {"horizon": 3}
    assert data.total_steps == 60
    # epsilon = 1 is uniform random: opening a 3-step lock has probability 1e-3 per episode
    assert sum(float(np.sum(e.rewards)) >= 1.0 for e in data.iterate_episodes()) <= 1


def test_run_dir_policy(tmp_path: Path) -> None:
    run = tmp_path / "cartpole"
    assert cli.main(["train", "--env", "CartPole-v1", "--total-timesteps", "64", "--n-steps", "64",
                     "--n-minibatches", "2", "--run-dir", str(run), "--progress", "off"]) == 0
    rc = cli.main(["collect", "--env", "CartPole-v1", "--policy", str(run), "--epsilon", "0.5", "--episodes", "3",
                   "--dataset-id", "cp-v0"])
    assert rc == 0
    assert minari.load_dataset("cp-v0").total_episodes == 3


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--env", "Nope-v3", "--policy", "random", "--dataset-id", "a-v0"], "unknown environment id"),
        (["--env", "CartPole-v1", "--policy", "lock-optimal", "--dataset-id", "a-v0"], "needs a combination lock"),
        (["--env", LOCK, "--policy", "lock-optimal", "--epsilon", "2", "--dataset-id", "a-v0"], "--epsilon"),
        (["--env", LOCK, "--policy", "no/such/run", "--dataset-id", "a-v0"], "not random, lock-optimal"),
        (["--env", LOCK, "--policy", "random", "--dataset-id", "bad id"], "invalid dataset id"),
        (["--env", LOCK, "--env-kwarg", "colour=3", "--policy", "random", "--dataset-id", "a-v0"], "cannot build"),
    ],
)
def test_errors_are_one_line(argv: list[str], needle: str, only_collect: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["collect", "--episodes", "2", *argv]) == 2
    _one_error_line(capsys, needle)
    assert not (only_collect / "a-v0").exists()


def test_existing_dataset_and_space_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _collect("--dataset-id", "lock3-v0", "--env-kwarg", "horizon=3") == 0
    capsys.readouterr()
    assert _collect("--dataset-id", "lock3-v0") == 2
    _one_error_line(capsys, "already exists")
    # H = 3 observations have 8 entries, the default H = 5 lock has 16: refused before any run file
    run = tmp_path / "run"
    rc = cli.main(["train", "--env", LOCK, "--offline-dataset", "lock3-v0", "--bc-steps", "5",
                   "--run-dir", str(run)])
    assert rc == 2
    _one_error_line(capsys, "does not fit env")
    assert not run.exists()
