"""compare on hand-made run folders: the numbers in the table are checked against hand computations."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hybridpg.cli import main
from hybridpg.experiments.compare import compare, load_run, load_runs, method_rows
from hybridpg.experiments.report import bootstrap_mean_band
from hybridpg.experiments.stats import per_env_iqm_with_ci


def _write_run(root: Path, algo: str, seed: int, evals: list[tuple[int, float]], finished: bool = True,
               total: int = 1000, extra: list[dict] | None = None, sps: float = 100.0) -> Path:
    run_dir = root / "Toy-v0" / algo / f"seed{seed}"
    run_dir.mkdir(parents=True)
    doc = {"algo": algo, "env": "Toy-v0", "seed": seed, "total_timesteps": total, "config": {"lr": 0.001}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc))
    lines = [{"step": s, "time": 0.0, "eval/return_mean": v} for s, v in evals] + (extra or [])
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if finished:
        (run_dir / "summary.json").write_text(json.dumps({"status": "finished", "sps": sps}))
    return run_dir


def _curve(seed: int, scale: float) -> list[tuple[int, float]]:
    # linear learning curve scale*(step/100) + seed at steps 100..1000
    return [(s, scale * s / 100 + seed) for s in range(100, 1001, 100)]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for seed in range(4):
        _write_run(tmp_path, "fast", seed, _curve(seed, 2.0), sps=100.0 + seed)
        _write_run(tmp_path, "slow", seed, _curve(seed, 1.0), sps=50.0)
    _write_run(tmp_path, "slow", 9, _curve(0, 5.0), finished=False)  # unfinished: listed, not scored
    return tmp_path


def test_final_early_and_auc_scores_match_hand_computation(root: Path) -> None:
    run = load_run(root / "Toy-v0" / "fast" / "seed1")
    assert run is not None
    assert run.final_return() == pytest.approx(np.mean([2 * 8 + 1, 2 * 9 + 1, 2 * 10 + 1]))  # last 3 evals
    assert run.return_at(0.3 * 1000) == pytest.approx(2 * 3 + 1)
    # time-average of the linear curve 2*s/100 + 1 over [100, 1000] is its midpoint value
    assert run.auc() == pytest.approx(2 * 5.5 + 1)


def test_table_rows_are_rliable_iqm_over_finished_runs(root: Path) -> None:
    rows = {r.method: r for r in method_rows(load_runs(root), reps=300)}
    slow = rows["slow"]
    assert (slow.n, slow.n_unfinished) == (4, 1)
    finals = np.array([9.0 + seed for seed in range(4)])  # mean of 8, 9, 10 plus the seed
    expected = per_env_iqm_with_ci(finals, reps=300, seed=0)
    assert slow.final == expected
    assert slow.final_mean == pytest.approx(finals.mean())
    assert rows["fast"].sps == pytest.approx(101.5)  # median of 100..103
    fast_final = rows["fast"].final
    assert fast_final is not None and fast_final.point > expected.point


def test_resumed_runs_keep_the_last_value_logged_at_a_step(tmp_path: Path) -> None:
    # the dead attempt logged 30 at step 300 and the resumed one re-logged that step as 3
    extra = [{"step": 300, "time": 0.0, "eval/return_mean": 3.0}]
    run_dir = _write_run(tmp_path, "a", 0, [(100, 1.0), (200, 2.0), (300, 30.0)], extra=extra)
    run = load_run(run_dir)
    assert run is not None
    steps, values = run.curves["eval/return_mean"]
    assert steps.tolist() == [100, 200, 300] and values.tolist() == [1.0, 2.0, 3.0]


def test_bootstrap_band_contains_the_mean_and_collapses_for_identical_runs() -> None:
    values = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    mean, low, high = bootstrap_mean_band(values, reps=500)
    assert mean.tolist() == [2.0, 3.0]
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(high - low > 0)
    same = np.ones((3, 2))
    _, low, high = bootstrap_mean_band(same, reps=50)
    assert np.all(low == 1.0) and np.all(high == 1.0)


def test_compare_writes_pngs_and_a_self_contained_report(root: Path, tmp_path: Path) -> None:
    stream = io.StringIO()
    out = tmp_path / "out"
    report = compare(root, out, reps=200, stream=stream)
    text = stream.getvalue()
    assert "== Toy-v0 ==" in text and "4 (+1 unfinished)" in text
    assert {p.name for p in out.glob("*.png")} == {"learning_curves_Toy-v0.png", "performance_profile.png"}
    html = report.read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert "<table>" in html and "lr: 0.001" in html  # table and configs embedded
    assert "pre{white-space:pre-wrap" in html  # long Reproduce commands wrap inside the page


def test_compare_on_a_folder_without_runs_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: hybridpg compare: no run folders (with config.yaml) under {tmp_path}"]
