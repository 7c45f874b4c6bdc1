"""hybridpg.experiments.stats agrees with rliable (exactly for point estimates, within bootstrap noise for CIs)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from hybridpg.errors import ConfigError
from hybridpg.experiments import stats

# rliable.library, as the package imports it (its import needs the pandas pin)
rly = stats._rly_library()
from rliable import metrics as rly_metrics  # noqa: E402


@pytest.fixture(scope="module")
def score_dict() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    return {
        "good": rng.beta(5, 2, size=(10, 4)),
        "medium": rng.beta(2, 2, size=(10, 4)),
        "bad": rng.beta(2, 5, size=(10, 4)),
    }


# ------------------------------------------------------------------------------------ points


def test_point_estimates_equal_rliable_exactly(score_dict: dict[str, np.ndarray]) -> None:
    for matrix in score_dict.values():
        assert stats.iqm(matrix) == rly_metrics.aggregate_iqm(matrix)
        assert stats.mean(matrix) == rly_metrics.aggregate_mean(matrix)
        assert stats.median(matrix) == rly_metrics.aggregate_median(matrix)
        assert stats.optimality_gap(matrix) == rly_metrics.aggregate_optimality_gap(matrix)
        assert stats.optimality_gap(matrix, threshold=0.7) == rly_metrics.aggregate_optimality_gap(
            matrix, gamma=0.7
        )


def test_iqm_hand_computed() -> None:
    # 8 values: the IQM drops the lowest 2 and highest 2 and averages the middle 4.
    scores = np.array([[100.0, -50.0], [1.0, 2.0], [3.0, 4.0], [0.0, 7.0]])
    assert stats.iqm(scores) == pytest.approx((1.0 + 2.0 + 3.0 + 4.0) / 4)
    assert stats.mean(scores) == pytest.approx(np.mean([26.0, -9.25]))
    assert stats.median(np.array([[0.0, 1.0, 10.0]])) == 1.0
    assert stats.optimality_gap(np.array([[0.5, 2.0]])) == pytest.approx(1.0 - (0.5 + 1.0) / 2)


# ------------------------------------------------------------------------------------ intervals


def test_aggregate_with_ci_matches_rliable(score_dict: dict[str, np.ndarray]) -> None:
    ours = stats.aggregate_with_ci(score_dict, reps=2000, seed=0)

    # Independent rliable call with a different seed: agreement within bootstrap noise.
    np.random.seed(987)
    points, cis = rly.get_interval_estimates(
        score_dict, lambda x: np.array([rly_metrics.aggregate_iqm(x)]), reps=2000
    )
    for method, matrix in score_dict.items():
        est = ours[method]["iqm"]
        assert est.point == points[method][0] == stats.iqm(matrix)
        assert abs(est.low - cis[method][0, 0]) < 0.02
        assert abs(est.high - cis[method][1, 0]) < 0.02
        for name in stats.METRICS:
            e = ours[method][name]
            assert e.low <= e.point <= e.high, (method, name, e)
        assert ours[method]["mean"].point == stats.mean(matrix)
        assert ours[method]["median"].point == stats.median(matrix)
        assert ours[method]["optimality_gap"].point == stats.optimality_gap(matrix)

    # Same seed: exactly rliable's numbers (our module is a thin, seeded wrapper).
    np.random.seed(0)
    _, cis_same = rly.get_interval_estimates(
        score_dict, lambda x: np.array([rly_metrics.aggregate_iqm(x)]), reps=2000
    )
    for method in score_dict:
        assert ours[method]["iqm"].low == cis_same[method][0, 0]
        assert ours[method]["iqm"].high == cis_same[method][1, 0]


def test_ci_is_reproducible_and_leaves_global_rng_alone(score_dict: dict[str, np.ndarray]) -> None:
    np.random.seed(42)
    expected_next = np.random.random()
    np.random.seed(42)
    a = stats.aggregate_with_ci(score_dict, metrics=("iqm", "mean"), reps=300, seed=3)
    assert np.random.random() == expected_next
    b = stats.aggregate_with_ci(score_dict, metrics=("iqm", "mean"), reps=300, seed=3)
    c = stats.aggregate_with_ci(score_dict, metrics=("iqm", "mean"), reps=300, seed=4)
    assert a == b
    assert a != c
    assert set(a["good"]) == {"iqm", "mean"}


def test_single_task_iqm_ci_matches_scipy_bootstrap() -> None:
    runs = np.random.default_rng(7).uniform(size=20)
    ours = stats.per_env_iqm_with_ci(runs, reps=5000, seed=1)

    def trimmed(x: np.ndarray, axis: int) -> np.ndarray:
        return scipy.stats.trim_mean(x, 0.25, axis=axis)

    ref = scipy.stats.bootstrap(
        (runs,), trimmed, n_resamples=5000, method="percentile", confidence_level=0.95, rng=5
    )
    assert ours.point == rly_metrics.aggregate_iqm(runs[:, None])
    assert abs(ours.low - ref.confidence_interval.low) < 0.02
    assert abs(ours.high - ref.confidence_interval.high) < 0.02


def test_single_run_gives_zero_width_ci() -> None:
    est = stats.aggregate_with_ci({"m": np.array([[0.2, 0.4, 0.9]])}, reps=50)["m"]
    for e in est.values():
        assert e.low == e.point == e.high
        assert e.width == 0.0
    single = stats.per_env_iqm_with_ci(np.array([0.3]), reps=20)
    assert (single.low, single.point, single.high) == (0.3, 0.3, 0.3)


# ------------------------------------------------------------------------------------ PoI


def test_probability_of_improvement() -> None:
    rng = np.random.default_rng(0)
    better = rng.normal(1.0, 0.2, size=(10, 3))
    worse = rng.normal(0.0, 0.2, size=(8, 3))
    est = stats.probability_of_improvement(better, worse, reps=300, seed=0)
    assert est.point == rly_metrics.probability_of_improvement(better, worse)
    assert est.point > 0.9 and est.low > 0.9

    same = rng.uniform(size=(10, 3))
    tie = stats.probability_of_improvement(same, same.copy(), reps=300, seed=0)
    assert tie.point == 0.5
    assert tie.low < 0.5 < tie.high
    assert abs((tie.low + tie.high) / 2 - 0.5) < 0.1

    a, b = rng.uniform(size=(10, 2)), rng.uniform(size=(10, 2))
    ab = stats.probability_of_improvement(a, b, reps=10, seed=0).point
    ba = stats.probability_of_improvement(b, a, reps=10, seed=0).point
    assert ab + ba == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ profiles


def test_performance_profile_monotone_and_matches_rliable(score_dict: dict[str, np.ndarray]) -> None:
    taus = np.linspace(0.0, 1.0, 21)
    profiles = stats.performance_profile(score_dict, taus, reps=500, seed=0)
    assert set(profiles) == set(score_dict)
    for method, (profile, low, high) in profiles.items():
        assert profile.shape == low.shape == high.shape == taus.shape
        for curve in (profile, low, high):
            assert np.all(np.diff(curve) <= 0), method
        assert np.all(low <= profile + 1e-12) and np.all(profile <= high + 1e-12)
        np.testing.assert_array_equal(profile, [np.mean(score_dict[method] > t) for t in taus])
    assert profiles["good"][0][10] > profiles["bad"][0][10]

    np.random.seed(0)
    ref_profiles, ref_cis = rly.create_performance_profile(score_dict, taus, reps=500)
    for method in score_dict:
        np.testing.assert_array_equal(profiles[method][0], ref_profiles[method])
        np.testing.assert_array_equal(profiles[method][1], ref_cis[method][0])
        np.testing.assert_array_equal(profiles[method][2], ref_cis[method][1])


# ------------------------------------------------------------------------------------ normalize


def test_normalize_max_and_reference() -> None:
    raw = {
        "EnvA": {"ppo": np.array([1.0, 2.0]), "props": np.array([4.0, 3.0])},
        "EnvB": {"ppo": np.array([10.0, 20.0]), "props": np.array([5.0, 0.0])},
    }
    out = stats.normalize(raw, "max")
    assert list(out) == ["ppo", "props"]
    np.testing.assert_allclose(out["ppo"], [[0.25, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(out["props"], [[1.0, 0.25], [0.75, 0.0]])

    # Low reference subtracted before dividing by the max: (x - low) / (max - low).
    out_low = stats.normalize(raw, "max", low={"EnvA": 0.0, "EnvB": -20.0})
    np.testing.assert_allclose(out_low["ppo"][:, 1], [30.0 / 40.0, 1.0])
    np.testing.assert_allclose(out_low["props"][:, 1], [25.0 / 40.0, 20.0 / 40.0])

    ref = stats.normalize(raw, {"EnvA": (0.0, 4.0), "EnvB": (10.0, 20.0)})
    np.testing.assert_allclose(ref["ppo"], [[0.25, 0.0], [0.5, 1.0]])
    np.testing.assert_allclose(ref["props"], [[1.0, -0.5], [0.75, -1.0]])


def test_normalize_bad_input() -> None:
    good = {"E": {"a": np.array([1.0, 2.0])}}
    with pytest.raises(ConfigError):
        stats.normalize({}, "max")
    with pytest.raises(ConfigError, match="methods"):
        stats.normalize({"E": {"a": np.ones(2)}, "F": {"b": np.ones(2)}}, "max")
    with pytest.raises(ConfigError, match="runs"):
        stats.normalize({"E": {"a": np.ones(2)}, "F": {"a": np.ones(3)}}, "max")
    with pytest.raises(ConfigError, match="max-normalize"):
        stats.normalize({"E": {"a": np.array([-1.0, -2.0])}}, "max")
    with pytest.raises(ConfigError, match="missing"):
        stats.normalize(good, {"F": (0.0, 1.0)})
    with pytest.raises(ConfigError, match="low < high"):
        stats.normalize(good, {"E": (1.0, 1.0)})
    with pytest.raises(ConfigError, match="NaN"):
        stats.normalize({"E": {"a": np.array([1.0, np.nan])}}, "max")
    with pytest.raises(ConfigError):
        stats.normalize({"E": {"a": np.ones((2, 2))}}, "max")


# ------------------------------------------------------------------------------------ AUC


def test_area_under_curve() -> None:
    assert stats.area_under_curve([0, 10, 20], [3.0, 3.0, 3.0]) == pytest.approx(3.0)
    # Linear ramp 0 -> 1 averages to 1/2; uneven step grid is handled by the trapezoid rule.
    assert stats.area_under_curve([0, 1, 4], [0.0, 0.25, 1.0]) == pytest.approx(0.5)
    assert stats.area_under_curve([100, 200], [1.0, 3.0]) == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        stats.area_under_curve([0], [1.0])
    with pytest.raises(ConfigError):
        stats.area_under_curve([0, 0, 1], [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError):
        stats.area_under_curve([0, 1], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 3)),
        np.zeros((3, 0)),
        np.zeros(5),
        np.zeros((2, 2, 2)),
        np.array([[0.1, np.nan]]),
        np.array([[0.1, np.inf]]),
        [["a", "b"]],
    ],
)
def test_bad_matrices_raise_config_error(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        stats.iqm(bad)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        stats.aggregate_with_ci({"m": bad}, reps=10)  # type: ignore[dict-item]


def test_bad_arguments_raise_config_error(score_dict: dict[str, np.ndarray]) -> None:
    with pytest.raises(ConfigError, match="empty"):
        stats.aggregate_with_ci({}, reps=10)
    with pytest.raises(ConfigError, match="same number of tasks"):
        stats.aggregate_with_ci({"a": np.ones((3, 2)), "b": np.ones((3, 3))}, reps=10)
    with pytest.raises(ConfigError, match="unknown metric"):
        stats.aggregate_with_ci(score_dict, metrics=("iqm", "auc"), reps=10)
    with pytest.raises(ConfigError, match="reps"):
        stats.aggregate_with_ci(score_dict, reps=0)
    with pytest.raises(ConfigError, match="seed"):
        stats.aggregate_with_ci(score_dict, reps=10, seed=-1)
    with pytest.raises(ConfigError, match="same number of tasks"):
        stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)), reps=10)
    with pytest.raises(ConfigError, match="taus"):
        stats.performance_profile(score_dict, np.array([]), reps=10)
    with pytest.raises(ConfigError, match="num_runs"):
        stats.per_env_iqm_with_ci(np.ones((3, 2)), reps=10)


def test_rliable_library_imports_as_is() -> None:
    """The pinned dependencies let rliable import without any patch (it needs arch < 8 and pandas < 3)."""
    import subprocess
    import sys

    code = "from rliable import library; import pandas.util._decorators as d; print(d.deprecate_kwarg.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pandas.util._decorators"
