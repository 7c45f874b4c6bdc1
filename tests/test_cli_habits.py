"""What SB3 / rl-zoo / CleanRL users type on day one: --version, typo hints, 1e5 step counts."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from hybridpg.cli import _parse, add_config_fields, build_parser, main
from hybridpg.config import PPOConfig


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_version_prints_the_installed_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "hybridpg.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"hybridpg {importlib.metadata.version('hybridpg')}\n"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--totl-timesteps", "5"], "error: hybridpg train: unrecognized arguments: --totl-timesteps 5; "
                                             "did you mean --total-timesteps?"),
        (["train", "--learnig-rate=0.1"], "did you mean --learning-rate?"),
        (["eval", "RUN", "--episods", "3"], "error: hybridpg eval: unrecognized arguments: --episods 3; "
                                            "did you mean --episodes?"),
        (["sweep", "--out", "x", "--wokers", "2"], "error: hybridpg sweep: unrecognized arguments: --wokers 2; "
                                                   "did you mean --workers?"),
        (["compare", "x", "--resp", "9"], "error: hybridpg compare: unrecognized arguments: --resp 9; "
                                          "did you mean --reps?"),
        (["demo", "--sedes", "2"], "error: hybridpg demo: unrecognized arguments: --sedes 2; did you mean --seeds?"),
        (["collect", "--env", "CartPole-v1", "--policy", "random", "--episodes", "1", "--dataset-id", "d",
          "--max-episode-step", "5", "--sed", "1"], "error: hybridpg collect: unrecognized arguments: --sed 1; "
                                                    "did you mean --seed?"),
    ],
)
def test_unknown_option_names_the_subcommand_and_suggests_the_closest(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = _err(capsys)
    assert len(err) == 1 and expected in err[0], err


def test_unknown_option_far_from_every_option_gets_no_guess(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--out", "x", "--zzzzzz"]) == 2
    assert _err(capsys) == ["error: hybridpg sweep: unrecognized arguments: --zzzzzz"]


def test_handler_errors_name_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path / "missing")]) == 2
    err = _err(capsys)
    assert len(err) == 1 and err[0].startswith("error: hybridpg compare: "), err


@pytest.mark.parametrize(
    "argv, dest",
    [
        (["sweep", "--out", "x", "--total-timesteps", "1e5"], "total_timesteps"),
        (["demo", "--total-timesteps", "3e4"], "total_timesteps"),
        (["collect", "--env", "CartPole-v1", "--policy", "random", "--episodes", "1", "--dataset-id", "d",
          "--max-episode-steps", "2e2"], "max_episode_steps"),
    ],
)
def test_step_counts_accept_scientific_notation(argv: list[str], dest: str) -> None:
    args = _parse(build_parser(), argv)
    value = getattr(args, dest)
    assert isinstance(value, int) and value == int(float(argv[-1]))


@pytest.mark.parametrize("command", [["train"], ["sweep", "--out", "x"], ["demo"]])
@pytest.mark.parametrize("bad", ["1.5", "1e-3", "lots"])
def test_a_non_integer_step_count_is_one_error_line(
    command: list[str], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--total-timesteps", bad]) == 2
    err = _err(capsys)
    assert len(err) == 1, err
    assert err[0] == (f"error: hybridpg {command[0]}: argument --total-timesteps: "
                      f"'{bad}' is not a whole number of steps (e.g. 100000 or 1e5)")


def test_train_takes_total_timesteps_in_scientific_notation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    code = main(["train", "--total-timesteps", "2.56e2", "--n-steps", "128", "--n-minibatches", "2",
                 "--n-epochs", "1", "--eval-freq", "0", "--run-dir", str(run), "--progress", "off"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text())["global_step"] == 256


@dataclasses.dataclass
class _DemoConfig:
    algo: ClassVar[str] = "demo"
    clip: float = dataclasses.field(default=0.2, metadata={"help": "PPO ratio clip, in % of 1"})
    plain: int = 7


def test_config_help_shows_each_fields_description_then_its_default() -> None:
    parser = argparse.ArgumentParser(prog="x", formatter_class=lambda prog: argparse.HelpFormatter(prog, width=200))
    add_config_fields(parser, _DemoConfig)
    text = " ".join(parser.format_help().split())
    assert "--clip FLOAT PPO ratio clip, in % of 1 (default: 0.2)" in text
    assert "--plain INT (default: 7)" in text  # no description: the default alone, as before


def test_train_help_uses_the_configs_descriptions() -> None:
    described = [f for f in dataclasses.fields(PPOConfig) if f.metadata.get("help")]
    if not described:
        pytest.skip("the config fields carry no descriptions yet")
    proc = subprocess.run([sys.executable, "-m", "hybridpg.cli", "train", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "400"})
    text = " ".join(proc.stdout.split())
    for f in described:
        assert f"--{f.name.replace('_', '-')} " in text and f"{f.metadata['help']} (default: " in text, f.name
