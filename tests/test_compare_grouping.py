"""compare never pools unlike runs, says what it leaves out, and reports only what the evaluations support.

The run folders are written as ``hybridpg train`` writes them: config.yaml with the algo's full
config, metrics.jsonl with ``eval/return_mean`` at step 0, every ``eval_freq`` updates and at the
end of the last update, and summary.json.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridpg.config import CONFIGS
from hybridpg.experiments.compare import compare, load_runs, method_rows
from hybridpg.experiments.grouping import IGNORED_FIELDS, group_settings

BC: dict[str, Any] = {"bc_steps": 500, "offline_dataset": "mujoco/hopper/expert-v0"}
PPO_3K = "ppo [total_timesteps=3000]"
PPO_30K = "ppo [total_timesteps=30000]"
PROPS = "props [offline_dataset=none, bc_steps=0]"
PROPS_BC = "props [offline_dataset=mujoco/hopper/expert-v0, bc_steps=500]"
BUFFER = "ppo-buffer [env_kwargs.ctrl_cost_weight=unset]"
BUFFER_KW = "ppo-buffer [env_kwargs.ctrl_cost_weight=0.5]"


def eval_steps(total: int, n_steps: int, eval_freq: int) -> list[int]:
    """Where an on-policy run evaluates: step 0 and every eval_freq updates (unless eval_freq is 0), and
    after its last update."""
    updates = math.ceil(total / n_steps)
    steps = [u * n_steps for u in range(updates + 1) if eval_freq and u % eval_freq == 0]
    return steps if steps and steps[-1] == updates * n_steps else [*steps, updates * n_steps]


def write_run(root: Path, env: str, algo: str, seed: int, total: int, level: float,
              overrides: dict[str, Any] | None = None, *, finished: bool = True, folder: str | None = None) -> Path:
    """A run whose eval return rises linearly from 0 to ``level`` (+ seed) over its budget."""
    config = CONFIGS[algo](**(overrides or {})).to_dict()
    run_dir = root / env / (folder or algo) / f"seed{seed}"
    run_dir.mkdir(parents=True)
    doc = {"algo": algo, "env": env, "seed": seed, "total_timesteps": total, "config": config,
           "versions": {"hybridpg": "0.1.0"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    lines = []
    steps = eval_steps(total, config["n_steps"], config["eval_freq"])
    for step in steps if finished else steps[:-1]:
        lines.append({"step": step, "time": 0.1, "losses/policy_loss": 0.0} if step else {"step": 0, "time": 0.1})
        lines[-1].update({"eval/return_mean": level * min(step / total, 1.0) + seed, "eval/return_std": 1.0})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if finished:
        summary = {"status": "finished", "algo": algo, "env": env, "seed": seed, "global_step": steps[-1],
                   "sps": 1000.0, "eval_return_mean": lines[-1]["eval/return_mean"]}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir


def make_study(root: Path) -> Path:
    """Two envs; PPO at two budgets, PROPS plain and BC-warm-started, PPO-Buffer with and without an
    env keyword, and a ROS that evaluated only at the end."""
    small: dict[str, Any] = {"n_steps": 512, "n_minibatches": 8}
    for seed in range(3):
        # two budgets of PPO; the 3k one evaluates only at step 0 and 3072 (6 updates of 512)
        write_run(root, "Hopper-v5", "ppo", seed, 3000, 50.0, small, folder="ppo-3k")
        write_run(root, "Hopper-v5", "ppo", seed, 30000, 1000.0, small, folder="ppo-30k")
        write_run(root, "CartPole-v1", "ppo", seed, 30000, 200.0, small)
        # plain PROPS is ahead of PPO on every env; its seed 1 ran with other non-learning knobs
        knobs: dict[str, Any] = {"eval_episodes": 20, "torch_threads": 2} if seed == 1 else {}
        write_run(root, "Hopper-v5", "props", seed, 30000, 2000.0, small | knobs)
        write_run(root, "CartPole-v1", "props", seed, 30000, 450.0, small | knobs)
        # PPO-Buffer with and without an env keyword
        write_run(root, "Hopper-v5", "ppo-buffer", seed, 30000, 800.0, small, folder="buf")
        keyword = {"env_kwargs": {"ctrl_cost_weight": 0.5}}
        write_run(root, "Hopper-v5", "ppo-buffer", seed, 30000, 900.0, small | keyword, folder="buf-kw")
    for seed in range(2):  # a BC warm start with only 2 seeds
        write_run(root, "Hopper-v5", "props", seed, 30000, 2500.0, small | BC, folder="props-bc")
    # ROS evaluated only at the end: one point, no curve to draw; one more seed never finished
    write_run(root, "Hopper-v5", "ros", 0, 30000, 700.0, small | {"eval_freq": 0})
    write_run(root, "Hopper-v5", "ros", 1, 30000, 700.0, small | {"eval_freq": 0}, finished=False)
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def output(study: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    stream = io.StringIO()
    compare(study, tmp_path_factory.mktemp("report"), reps=100, stream=stream)
    return stream.getvalue()


def table(text: str, env: str) -> dict[str, list[str]]:
    """``{label: cells}`` of one env's printed table (cells split on runs of 2+ spaces)."""
    block = text.split(f"== {env} ==\n", 1)[1].split("\n==", 1)[0].split("\n↑ higher", 1)[0]
    rows = [line for line in block.splitlines()[2:] if line and not line.startswith(("n/a ", "warning", "left"))]
    return {cells[0]: cells[1:] for cells in (re.split(r" {2,}", row) for row in rows)}


def test_unlike_budgets_env_kwargs_and_bc_warm_starts_are_separate_rows(output: str) -> None:
    hopper = table(output, "Hopper-v5")
    assert set(hopper) == {PPO_3K, PPO_30K, PROPS, PROPS_BC, BUFFER, BUFFER_KW, "ros"}
    assert table(output, "CartPole-v1").keys() == {PPO_30K, PROPS}  # the same fields are named on every env
    assert hopper[PPO_30K][0] == "3" and hopper[PROPS_BC][0] == "2" and hopper["ros"][0] == "1 (+1 unfinished)"


def test_seed_and_non_learning_fields_do_not_split_a_setting(study: Path) -> None:
    settings = group_settings(load_runs(study))["Hopper-v5"]
    props = next(s for s in settings if s.label == PROPS)
    assert [r.seed for r in props.runs] == [0, 1, 2]  # seed 1 had eval_episodes=20, torch_threads=2
    assert {"eval_freq", "eval_episodes", "torch_threads", "device"} <= IGNORED_FIELDS


def test_a_run_written_with_an_older_config_layout_joins_its_setting(tmp_path: Path) -> None:
    write_run(tmp_path, "Toy-v0", "ppo", 0, 30000, 10.0, {"n_steps": 512})
    old = write_run(tmp_path, "Toy-v0", "ppo", 1, 30000, 10.0, {"n_steps": 512}, folder="old")
    doc = yaml.safe_load((old / "config.yaml").read_text())
    doc["config"]["props_lr"] = 0.001  # older layouts carried PROPS's fields in every on-policy config
    del doc["config"]["bc_lr"]  # and lacked fields added since (which take their default)
    (old / "config.yaml").write_text(yaml.safe_dump(doc))
    assert [(r.method, r.n) for r in method_rows(load_runs(tmp_path), reps=50)] == [("ppo", 2)]


def test_columns_the_evaluations_cannot_support_are_na_and_say_why_once(output: str) -> None:
    row = table(output, "Hopper-v5")[PPO_3K]
    # evaluations at 0 and 3072 only: @30% and AUC would be made of those two points; final is the last one
    assert row[1] != "n/a" and row[3:5] == ["n/a", "n/a"]
    for column in ("@30%", "AUC"):
        lines = [line for line in output.splitlines() if line.startswith(f"n/a Hopper-v5 {PPO_3K} {column}:")]
        assert len(lines) == 1, column
    assert f"n/a Hopper-v5 {PPO_3K} final" not in output
    assert "an area needs at least 3 (with 2 it is only the mean of the first and last)" in output
    assert "3 of 3 run(s), e.g. seed 0: the evaluation nearest to step 900 (30% of 3000) is at step" in output
    full = table(output, "Hopper-v5")[PPO_30K]
    assert "n/a" not in full[1:5]
    assert f"n/a Hopper-v5 {PPO_30K}" not in output


def test_final_averages_only_evaluations_in_the_second_half_of_the_budget(tmp_path: Path) -> None:
    # 4 updates of 128 with an evaluation every 2: steps 0, 256, 512; the one at step 0 is not "final"
    run_dir = write_run(tmp_path, "Toy-v0", "ppo", 0, 512, 100.0, {"n_steps": 128, "n_minibatches": 4,
                                                                    "eval_freq": 2})
    (run,) = load_runs(tmp_path)
    assert run.curves["eval/return_mean"][0].tolist() == [0, 256, 512]
    assert run.final_return() == pytest.approx((50.0 + 100.0) / 2)
    assert run_dir.exists()


def test_a_run_without_its_last_evaluation_has_no_final_and_is_left_out_of_the_aggregate(tmp_path: Path) -> None:
    for seed in range(3):
        run_dir = write_run(tmp_path, "Toy-v0", "ppo", seed, 30000, 100.0, {"n_steps": 512, "n_minibatches": 8})
        text = (run_dir / "metrics.jsonl").read_text()
        (run_dir / "metrics.jsonl").write_text(text[:-20])  # a torn last line: the final evaluation is lost
    stream = io.StringIO()
    compare(tmp_path, tmp_path / "report", reps=50, stream=stream)
    text = stream.getvalue()
    assert table(text, "Toy-v0")["ppo"][1:3] == ["n/a", "n/a"]
    assert ("n/a Toy-v0 ppo final: 3 of 3 run(s), e.g. seed 0: the last evaluation is at step 25600, not within "
            "10% of the end of the budget 30000") in text
    assert "aggregate: left out Toy-v0 ppo: its final column is n/a" in text
    assert "plot performance_profile: not drawn: no finished runs with a supported final column" in text


def test_the_return_at_30_percent_is_read_at_30_percent_of_each_runs_budget(study: Path) -> None:
    rows = {r.method: r for r in method_rows(load_runs(study), reps=50) if r.env == "Hopper-v5"}
    # linear curves 1000 * step / 30000 + seed, evaluated every 5120 steps: 300 + seed at step 9000
    early = rows[PPO_30K].early
    assert early is not None and early.point == pytest.approx(301.0)
    assert rows[PPO_3K].early is None and rows[PPO_3K].auc is None
    assert rows[PPO_3K].final_mean == pytest.approx(51.0)  # the evaluation at step 3072 alone


def test_few_seeds_warn(output: str) -> None:
    assert f"warning: Hopper-v5 {PROPS_BC}: n=2: the interval says little" in output
    assert "warning: Hopper-v5 ros: n=1: the interval says little" in output  # its unfinished run is not counted
    assert f"warning: Hopper-v5 {PROPS}:" not in output


def test_what_a_plot_or_the_aggregate_leaves_out_is_printed_with_the_reason(output: str) -> None:
    assert "plot learning_curves_Hopper-v5: left out ros: its runs share one evaluation step (30208)" in output
    assert f"plot performance_profile: left out {BUFFER_KW}: no final score on CartPole-v1" in output
    assert "plot sampling_error_Hopper-v5: not drawn: no run logged diagnostics/sampling_error" in output


def test_aggregate_over_envs_pools_only_methods_run_on_the_same_envs(output: str) -> None:
    aggregate = output.split("== aggregate over envs", 1)[1].split("== probability of improvement", 1)[0]
    both, hopper_only = aggregate.split("envs CartPole-v1, Hopper-v5:\n", 1)[1].split("envs Hopper-v5:\n", 1)
    assert [line.split("  ")[1] for line in both.splitlines()] == [PROPS, PPO_30K]  # PROPS first: ahead
    scores = {m.group(1): float(m.group(2)) for m in re.finditer(r"  (\S.*?\S)  +([\d.]+) \[", aggregate)}
    # per env, final / best final: PROPS ~380/382 on CartPole-v1 and ~1690/2114 (the BC run is best) on Hopper-v5
    assert 0.85 < scores[PROPS] < 0.95 and 0.35 < scores[PPO_30K] < 0.5
    assert PROPS_BC in hopper_only and PPO_3K in hopper_only and PPO_30K not in hopper_only
    assert f"aggregate: {PROPS} pools envs whose settings differ in" not in output  # the same config on both


def test_probability_of_improvement_of_a_method_ahead_on_every_env_is_high(output: str) -> None:
    line = next(line for line in output.splitlines() if line.startswith(f"  P({PROPS} > {PPO_30K})"))
    match = re.search(r"\) = ([\d.]+) \[([\d.]+), ([\d.]+)\] on (.*)$", line)
    assert match is not None, line
    point, low, high = map(float, match.groups()[:3])
    assert point > 0.5 and low <= point <= high
    assert match.group(4) == "CartPole-v1, Hopper-v5"
    # pairs only over the envs both ran: PPO-Buffer meets PROPS on Hopper-v5 alone
    assert re.search(rf"P\({re.escape(PROPS)} > {re.escape(BUFFER)}\) = [\d.]+ \[[\d.]+, [\d.]+\] on Hopper-v5$",
                     output, re.MULTILINE)


def test_the_report_holds_the_rows_the_aggregate_and_what_was_left_out(study: Path, tmp_path: Path) -> None:
    compare(study, tmp_path, reps=50, stream=io.StringIO())
    html = (tmp_path / "report.html").read_text()
    assert "ppo [total_timesteps=3000]" in html and "n/a" in html
    assert "envs CartPole-v1, Hopper-v5:" in html and "P(props" in html
    assert "left out ros: its runs share one evaluation step" in html
