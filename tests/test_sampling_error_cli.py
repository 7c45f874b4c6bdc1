"""hybridpg sampling-error keeps settings apart, counts each seed once and speaks in its own flags;
commands writing to an --out folder that cannot be made give one error line and leave nothing."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from hybridpg import cli
from hybridpg.experiments.fixed_target import read_rows, summarize

BASE = ["sampling-error", "--env", "CartPole-v1", "--batches", "2", "--batch-size", "64", "--seeds", "1",
        "--se-epochs", "5"]


@pytest.fixture(autouse=True)
def quiet_threads(one_thread: None) -> None:
    del one_thread


def _run(out: Path, *extra: str) -> int:
    return cli.main([*BASE, "--out", str(out), *extra])


def _csv(out: Path) -> list[dict[str, str]]:
    with open(out / "sampling_error.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_settings_stay_apart_and_reruns_replace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "se"
    assert _run(out, "--method", "on-policy,props") == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == (f"wrote {out / 'sampling_error.csv'} and {out / 'sampling_error.png'} "
                           f"(4 rows in {out / 'sampling_error.jsonl'})")
    assert _run(out, "--method", "on-policy", "--batch-size", "128") == 0
    assert _run(out, "--method", "props", "--props-lr", "0.01") == 0
    rows = _csv(out)
    assert len(rows) == 8
    first = rows[0]
    assert (first["method"], first["target"], first["batches"], first["batch_size"], first["se_epochs"]) == (
        "on-policy", "random", "2", "64", "5")
    props = [r for r in rows if r["method"] == "props"]
    # unset knobs record the values used: m falls back to the batch size below 256
    assert {(r["behavior_steps"], r["props_lr"], r["props_epochs"]) for r in props} == {
        ("64", "0.003", "64"), ("64", "0.01", "64")}
    table = summarize(read_rows(out / "sampling_error.jsonl"))
    assert [(name, samples, seeds) for (_, name, samples), (_, _, seeds) in table.items()] == [
        ("on-policy (batch_size=128)", 128, 1), ("on-policy (batch_size=128)", 256, 1),
        ("on-policy (batch_size=64)", 64, 1), ("on-policy (batch_size=64)", 128, 1),
        ("props (batch_size=64, props_lr=0.003)", 64, 1), ("props (batch_size=64, props_lr=0.003)", 128, 1),
        ("props (batch_size=64, props_lr=0.01)", 64, 1), ("props (batch_size=64, props_lr=0.01)", 128, 1),
    ]
    capsys.readouterr()
    # the same settings and seed again: replaced, not counted twice
    assert _run(out, "--method", "props", "--props-lr", "0.01") == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-2].startswith("CartPole-v1 props (batch_size=64, props_lr=0.01): SE ")
    assert printed[-2].endswith("(95% CI, 1 seeds) at 128 samples")
    assert printed[-1].endswith("(8 rows in " + str(out / "sampling_error.jsonl")
                                + "; replaced 2 earlier rows of the same settings and seeds)")
    assert len(_csv(out)) == 8 and len(read_rows(out / "sampling_error.jsonl")) == 8
    assert (out / "sampling_error.png").stat().st_size > 1000
    assert sorted(p.name for p in out.iterdir()) == ["sampling_error.csv", "sampling_error.jsonl",
                                                     "sampling_error.png"]


def test_rows_from_before_settings_were_recorded_stay_apart(tmp_path: Path) -> None:
    out = tmp_path / "se"
    old = {"env": "CartPole-v1", "method": "on-policy", "target": "random", "seed": 0, "samples": 128, "se": 0.5}
    out.mkdir()
    (out / "sampling_error.jsonl").write_text(json.dumps(old) + "\n")
    assert _run(out, "--method", "on-policy") == 0
    table = summarize(read_rows(out / "sampling_error.jsonl"))
    names = {name for (_, name, samples) in table if samples == 128}
    assert names == {"on-policy (batches=?, batch_size=?, se_epochs=?)",
                     "on-policy (batches=2, batch_size=64, se_epochs=5)"}


@pytest.mark.parametrize("extra, message", [
    (["--method", "props", "--behavior-steps", "48"], "--behavior-steps 48: must divide --batch-size 64"),
    (["--method", "props", "--batches", "1"], "--batches 1: PROPS needs --batches >= 2"),
    (["--method", "ros", "--ros-lr", "-1"], "--ros-lr -1.0: must be > 0"),
    (["--props-clip", "1.5"], "--props-clip 1.5: must be in (0, 1)"),
    (["--props-minibatches", "2.5"], "argument --props-minibatches: invalid int value: '2.5'"),
    (["--se-epochs", "0"], "--se-epochs 0: must be >= 1"),
    (["--seed-start", "-1"], "--seed-start -1: must be >= 0"),
])
def test_errors_name_the_command_flags(tmp_path: Path, extra: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "se"
    assert _run(out, *extra) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: hybridpg sampling-error: {message}"]
    assert not out.exists()


def _unwritable_outs(tmp_path: Path) -> list[tuple[Path, str]]:
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [(afile / "sub", f"{afile} is a file, not a folder"), (afile, "is a file, not a folder")]
    if os.geteuid() != 0:  # root writes into read-only folders
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        cases.append((readonly / "sub", "Permission denied"))
    return cases


def test_collect_into_a_folder_that_cannot_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ["hybridpg.cli.collect"])
    for out, needle in _unwritable_outs(tmp_path):
        argv = ["collect", "--env", "CartPole-v1", "--policy", "random", "--episodes", "2", "--dataset-id",
                "t-v0", "--out", str(out)]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: hybridpg collect: --out {out}") and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) in (["afile"], ["afile", "readonly"])
    if (tmp_path / "readonly").exists():
        assert not any((tmp_path / "readonly").iterdir())


def test_collect_creates_a_missing_out_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ["hybridpg.cli.collect"])
    out = tmp_path / "a" / "b"
    argv = ["collect", "--env", "CartPole-v1", "--policy", "random", "--episodes", "2", "--dataset-id", "t-v0",
            "--out", str(out)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip().endswith(f"to {out / 't-v0'}")
    assert [p.name for p in out.iterdir()] == ["t-v0"]


def test_sampling_error_into_a_folder_that_cannot_be_made(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for out, _ in _unwritable_outs(tmp_path):
        assert _run(out, "--method", "on-policy") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: hybridpg sampling-error: cannot write results to {out}")


def test_collect_takes_env_kwargs_as_train_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import minari

    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ["hybridpg.cli.collect"])
    argv = ["collect", "--env", "hybridpg/CombinationLock-v0", "--policy", "lock-optimal", "--episodes", "2",
            "--out", str(tmp_path)]
    assert cli.main([*argv, "--dataset-id", "l7-v0", "--env-kwargs", "horizon=7,noise_std=0.05"]) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    data = minari.load_dataset("l7-v0")
    assert data.total_steps == 14 and data.spec.env_spec.kwargs == {"horizon": 7, "noise_std": 0.05}
    capsys.readouterr()
    assert cli.main([*argv, "--dataset-id", "x-v0", "--env-kwargs", "horizon"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: hybridpg collect: --env-kwargs: 'horizon' is not key=value"]


def test_seeds_take_the_sweep_syntax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "se"
    argv = [*BASE[:-4], "--se-epochs", "5", "--method", "on-policy", "--out", str(out)]
    assert cli.main([*argv, "--seeds", "3,5"]) == 0
    assert sorted({int(row["seed"]) for row in read_rows(out / "sampling_error.jsonl")}) == [3, 5]
    assert cli.main([*argv, "--seeds", "0,x"]) == 2
    assert "--seeds='0,x': give a count" in capsys.readouterr().err
