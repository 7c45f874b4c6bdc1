"""A user's own environments from the CLI: --import MODULE and Gymnasium's module:EnvId-v0 form."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hybridpg.cli import main

ENV_MODULE = '''
import gymnasium as gym
import numpy as np


class Countdown(gym.Env):
    """Ten steps; reward 1 for action 1."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / 10, np.float32), float(action), self.t >= 10, False, {}


gym.register(id="{env_id}", entry_point=Countdown)
'''
TINY = ["--n-steps", "64", "--n-minibatches", "2", "--n-epochs", "1", "--eval-freq", "0", "--eval-episodes", "1",
        "--progress", "off"]
CLI = str(Path(sys.executable).parent / "hybridpg")  # the console script: its sys.path lacks the cwd


def _user_module(folder: Path) -> tuple[str, str]:
    """A fresh module name (imports are cached per process) and the env id it registers."""
    tag = uuid.uuid4().hex[:8]
    name, env_id = f"user_envs_{tag}", f"Countdown{tag}-v0"
    (folder / f"{name}.py").write_text(ENV_MODULE.replace("{env_id}", env_id))
    return name, env_id


def test_import_option_registers_the_users_env_for_train_and_eval(tmp_path: Path) -> None:
    module, env_id = _user_module(tmp_path)
    train = subprocess.run([CLI, "train", "--import", module, "--env", env_id, "--total-timesteps", "128",
                            "--run-dir", "run", *TINY], cwd=tmp_path, capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env"] == env_id
    without = subprocess.run([CLI, "eval", "run", "--episodes", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert without.returncode == 2 and "unknown environment id" in without.stderr
    ok = subprocess.run([CLI, "eval", "run", "--episodes", "1", "--import", module], cwd=tmp_path,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"on {env_id}: return" in ok.stdout


def test_module_colon_env_id_works_and_is_kept_by_the_run(tmp_path: Path) -> None:
    module, env_id = _user_module(tmp_path)
    full = f"{module}:{env_id}"
    train = subprocess.run([CLI, "train", "--env", full, "--total-timesteps", "128", "--run-dir", "run", *TINY],
                           cwd=tmp_path, capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    # the run's env id carries the module, so eval needs no --import
    ok = subprocess.run([CLI, "eval", "run", "--episodes", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"on {full}: return" in ok.stdout


def test_sweep_workers_see_imported_envs(tmp_path: Path) -> None:
    module, env_id = _user_module(tmp_path)
    proc = subprocess.run([CLI, "sweep", "--import", module, "--algos", "ppo", "--envs", env_id, "--seeds", "1",
                           "--total-timesteps", "128", "--set", "n_steps=64", "--set", "n_minibatches=2",
                           "--set", "n_epochs=1", "--set", "eval_freq=0", "--set", "eval_episodes=1",
                           "--out", "sweep", "--workers", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summaries = list((tmp_path / "sweep").rglob("summary.json"))
    assert len(summaries) == 1 and json.loads(summaries[0].read_text())["status"] == "finished"


@pytest.mark.parametrize(
    "source, argv_env, expected",
    [
        ("raise RuntimeError('no license file')\n", None,
         "cannot import module '{m}': RuntimeError: no license file"),
        (None, None, "cannot import module '{m}': ModuleNotFoundError: No module named '{m}'"),
        ("x = 1 / 0\n", "colon", "cannot import module '{m}': ZeroDivisionError: division by zero"),
    ],
)
def test_a_module_that_fails_to_import_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    source: str | None, argv_env: str | None, expected: str,
) -> None:
    name = f"broken_{uuid.uuid4().hex[:8]}"
    if source is not None:
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--env", f"{name}:Whatever-v0"] if argv_env else ["train", "--import", name]
    assert main([*argv, "--run-dir", "run", "--total-timesteps", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: hybridpg train: {expected.format(m=name)}"]
    assert not (tmp_path / "run").exists()


def test_import_of_something_that_is_not_a_module_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "RUN", "--import", "my-envs.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: hybridpg eval: cannot import 'my-envs.py': not a module name (e.g. my_envs or my_pkg.envs)"]
