"""Reproducibility records: config.yaml and summary.json name the versions and the git commit."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import yaml

from hybridpg import PPO
from hybridpg.training import versions
from hybridpg.training.versions import git_commit


def test_run_files_record_versions_and_commit(tmp_path: Path) -> None:
    run = tmp_path / "run"
    agent = PPO("CartPole-v1", seed=0, n_steps=128, n_minibatches=2, n_epochs=1, eval_freq=0, eval_episodes=1)
    agent.learn(128, run_dir=run, progress=False)
    config = yaml.safe_load((run / "config.yaml").read_text())
    summary = json.loads((run / "summary.json").read_text())
    for record in (config["versions"], summary["versions"]):
        for name in ("hybridpg", "torch", "gymnasium", "mujoco", "numpy"):
            assert record[name] == importlib.metadata.version(name), name
        package = Path(versions.__file__).resolve().parents[1]
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True)
        if head.returncode == 0:  # run from this checkout
            assert record["git_commit"].removesuffix("-dirty") == head.stdout.strip()


def test_git_commit_is_none_outside_a_checkout_or_without_git(tmp_path: Path, monkeypatch) -> None:
    assert git_commit(tmp_path) is None  # not a repository
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "other.txt").write_text("x")
    assert git_commit(tmp_path) is None  # a repository, but hybridpg is not tracked in it
    monkeypatch.setenv("PATH", "")  # no git at all
    assert git_commit() is None


def test_git_commit_marks_uncommitted_changes(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "__init__.py").write_text("")
    git("add", "__init__.py")
    git("commit", "-q", "-m", "x")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "__init__.py").write_text("changed = 1\n")
    assert git_commit(tmp_path) == f"{head}-dirty"
