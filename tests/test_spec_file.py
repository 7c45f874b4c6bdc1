"""Sweep spec files: layered settings per algo, env and algo x env, validated before any run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hybridpg.errors import ConfigError
from hybridpg.experiments.spec_file import load_spec
from hybridpg.experiments.sweep import SweepSpec, run_sweep


def _write(path: Path, doc: dict) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_the_bundled_paper_spec_layers_settings_as_the_spec_table_gives_them() -> None:
    spec = load_spec("props-paper")
    assert spec.algos == ["props", "ppo-buffer", "ppo"] and len(spec.seeds) >= 10
    assert spec.budget_for("Hopper-v5") >= 200_000
    props, buffer, ppo = (spec.settings_for(a, "Hopper-v5") for a in ("props", "ppo-buffer", "ppo"))
    assert (props["n_steps"], props["learning_rate"], props["behavior_steps"]) == (2048, 1e-3, 256)
    assert (props["props_lr"], props["props_target_kl"], props["props_lambda"]) == (1e-3, 0.05, 0.3)
    assert (buffer["n_steps"], buffer["learning_rate"], buffer["buffer_batches"]) == (1024, 1e-4, 2)
    assert (ppo["n_steps"], ppo["learning_rate"], ppo["buffer_batches"]) == (2048, 1e-3, 1)
    swimmer = spec.settings_for("props", "Swimmer-v5")
    assert (swimmer["behavior_steps"], swimmer["props_lr"], swimmer["props_lambda"]) == (1024, 1e-5, 0.1)
    assert all(spec.settings_for(a, e)["ent_coef"] == 0.01 for a in spec.algos for e in spec.envs)


def test_later_layers_win(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path / "s.yaml", {
        "algos": ["ppo", "props"], "envs": ["CartPole-v1", "Pendulum-v1"], "seeds": "3-4",
        "total_timesteps": {"default": 1000, "Pendulum-v1": 2000},
        "settings": {"n_steps": 64, "learning_rate": 1e-3},
        "algo_settings": {"props": {"n_steps": 128, "behavior_steps": 32}},
        "env_settings": {"Pendulum-v1": {"learning_rate": 3e-4}},
        "algo_env_settings": {"props": {"Pendulum-v1": {"learning_rate": 1e-4}}},
    }))
    assert spec.seeds == [3, 4]
    assert spec.budget_for("CartPole-v1") == 1000 and spec.budget_for("Pendulum-v1") == 2000
    assert spec.settings_for("ppo", "CartPole-v1") == {"n_steps": 64, "learning_rate": 1e-3}
    assert spec.settings_for("ppo", "Pendulum-v1")["learning_rate"] == 3e-4
    assert spec.settings_for("props", "CartPole-v1") == {"n_steps": 128, "learning_rate": 1e-3, "behavior_steps": 32}
    assert spec.settings_for("props", "Pendulum-v1")["learning_rate"] == 1e-4


@pytest.mark.parametrize(("doc", "message"), [
    ({"algos": ["ppo", "sac"], "envs": ["Pendulum-v1"], "total_timesteps": 100, "settings": {"n_steps": 64}},
     "sac has no setting 'n_steps'"),
    ({"algos": ["ppo"], "envs": ["CartPole-v1"], "total_timesteps": 100,
      "algo_env_settings": {"ppo": {"CartPole-v1": {"n_steps": -5}}}}, "ppo on CartPole-v1: config field 'n_steps'"),
    ({"algos": ["ppo"], "envs": ["CartPole-v1"], "total_timesteps": 100, "algo_settings": {"props": {}}},
     "algo_settings names 'props', which is not in algos"),
    ({"algos": ["ppo"], "envs": ["CartPole-v1"], "total_timesteps": 100,
      "algo_env_settings": {"ppo": {"Hopper-v5": {}}}}, "names 'Hopper-v5', which is not in envs"),
    ({"algos": ["ppo"], "envs": ["CartPole-v1"], "total_timesteps": {"Hopper-v5": 5}}, "not in envs"),
    ({"algos": ["ppo"], "envs": ["CartPole-v1"], "total_timesteps": 0}, "whole number >= 1"),
    ({"algos": ["ppo"], "envs": ["CartPole-v1"], "total_timesteps": 10, "hyperparams": {}}, "unknown key"),
    ({"algos": ["nope"], "envs": ["CartPole-v1"], "total_timesteps": 10}, "unknown algorithm 'nope'"),
])
def test_bad_specs_are_one_line(tmp_path: Path, doc: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_spec(_write(tmp_path / "s.yaml", doc))
    assert "\n" not in str(info.value)


def test_the_cli_refuses_a_setting_a_method_lacks_before_any_run(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.yaml", {"algos": ["ppo", "sac"], "envs": ["Pendulum-v1"], "total_timesteps": 100,
                                         "algo_settings": {"sac": {"props_lr": 1e-3}}})
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "hybridpg", "sweep", "--spec", path, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "sac has no setting 'props_lr'" in proc.stderr
    assert not out.exists()


def test_a_spec_sweep_gives_each_run_its_own_settings(tmp_path: Path) -> None:
    doc: dict = {"algos": ["ppo", "props"], "envs": ["CartPole-v1"], "seeds": 1,
           "total_timesteps": 128, "settings": {"n_steps": 64, "eval_freq": 0, "se_freq": 0},
           "algo_env_settings": {"props": {"CartPole-v1": {"behavior_steps": 32, "n_minibatches": 4}}}}
    path = _write(tmp_path / "s.yaml", doc)
    root = tmp_path / "sweep"
    progress = run_sweep(SweepSpec(["ppo", "props"], ["CartPole-v1"], [0], 0, {}, root, spec_file=load_spec(path)))
    assert progress.failed == 0 and progress.done == 2
    configs = {a: yaml.safe_load((root / "CartPole-v1" / a / "seed0" / "config.yaml").read_text())
               for a in ("ppo", "props")}
    assert "behavior_steps" not in configs["ppo"]["config"] and configs["ppo"]["config"]["n_minibatches"] == 32
    assert configs["props"]["config"]["behavior_steps"] == 32 and configs["props"]["config"]["n_minibatches"] == 4
    assert all(c["total_timesteps"] == 128 for c in configs.values())
    # a changed setting for runs already in the folder is refused; a new env is welcome
    doc["algo_env_settings"]["props"]["CartPole-v1"]["behavior_steps"] = 16
    with pytest.raises(ConfigError, match="holds props runs on CartPole-v1 with behavior_steps=32"):
        run_sweep(SweepSpec(["ppo", "props"], ["CartPole-v1"], [0], 0, {}, root,
                            spec_file=load_spec(_write(tmp_path / "s.yaml", doc))))
