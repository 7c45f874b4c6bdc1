"""Offline datasets in Minari's format: collect -> write -> read, and every error path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer
from minari.dataset._storages.hdf5_storage import HDF5Storage

from hybridpg.data.datasets import (
    EpisodeRecord,
    OfflineDataset,
    check_compatible,
    collect_episodes,
    load_dataset,
    write_dataset,
)
from hybridpg.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _isolated_minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch ~/.minari: the default root is a fresh folder; tests pass `root` explicitly."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "default-root"))


def _random_policy(env: gym.Env[Any, Any]) -> Any:
    return lambda _obs: env.action_space.sample()


def _cartpole_dataset(root: Path, dataset_id: str = "cartpole/random-v0", n: int = 3) -> list[EpisodeRecord]:
    env = gym.make("CartPole-v1")
    episodes = collect_episodes(env, _random_policy(env), n_episodes=n, seed=0)
    write_dataset(dataset_id, episodes, "CartPole-v1", env.observation_space, env.action_space, root=root)
    env.close()
    return episodes


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _check_matches(ds: OfflineDataset, episodes: list[EpisodeRecord]) -> None:
    assert ds.n_episodes == len(episodes)
    assert ds.n_transitions == sum(len(e) for e in episodes)
    for arr in (
        ds.observations,
        ds.actions,
        ds.rewards,
        ds.next_observations,
        ds.terminations,
        ds.truncations,
    ):
        assert arr.dtype == np.float32
    np.testing.assert_array_equal(ds.episode_lengths, [len(e) for e in episodes])
    for i, (view, ep) in enumerate(zip(ds.episodes(), episodes, strict=True)):
        obs = ep.observations.astype(np.float32)
        np.testing.assert_array_equal(view.observations, obs[:-1])
        np.testing.assert_array_equal(view.next_observations, obs[1:])
        np.testing.assert_array_equal(view.actions, ep.actions.astype(np.float32).reshape(view.actions.shape))
        np.testing.assert_array_equal(view.rewards, ep.rewards.astype(np.float32))
        np.testing.assert_array_equal(view.terminations, ep.terminations.astype(np.float32))
        np.testing.assert_array_equal(view.truncations, ep.truncations.astype(np.float32))
        start = int(ds.episode_offsets[i])
        end = int(ds.episode_offsets[i + 1])
        # next_observations never leaks into the following episode
        np.testing.assert_array_equal(ds.next_observations[end - 1], obs[-1])
        np.testing.assert_array_equal(ds.observations[start], obs[0])
        assert ds.episode_starts[start] and not ds.episode_starts[start + 1 : end].any()
        assert (ds.episode_ids[start:end] == i).all()
        assert ds.terminations[end - 1] + ds.truncations[end - 1] >= 1


# --------------------------------------------------------------------------------------------
# Round trips


def test_collect_episodes_records_final_observation() -> None:
    env = gym.make("CartPole-v1")
    episodes = collect_episodes(env, _random_policy(env), n_episodes=2, seed=3)
    again = collect_episodes(env, _random_policy(env), n_episodes=2, seed=3)
    for ep, ep2 in zip(episodes, again, strict=True):
        steps = len(ep)
        assert ep.observations.shape == (steps + 1, 4)
        assert ep.actions.shape == (steps,) and ep.rewards.shape == (steps,)
        assert ep.terminations[-1] or ep.truncations[-1]
        assert not (ep.terminations[:-1].any() or ep.truncations[:-1].any())
        np.testing.assert_array_equal(ep.observations, ep2.observations)  # seeded: reproducible
    assert [e.seed for e in episodes] == [3, 4]

    short = collect_episodes(gym.make("Pendulum-v1"), lambda _o: np.zeros(1), 1, 0, max_episode_steps=5)
    assert len(short[0]) == 5 and short[0].truncations[-1] and not short[0].terminations.any()


def test_round_trip_cartpole(tmp_path: Path) -> None:
    before = os.environ["MINARI_DATASETS_PATH"]
    episodes = _cartpole_dataset(tmp_path, "cartpole/random-v0", n=4)
    assert os.environ["MINARI_DATASETS_PATH"] == before  # restored after the call
    data_dir = tmp_path / "cartpole" / "random-v0" / "data"
    assert (data_dir / "metadata.json").is_file() and (data_dir / "main_data.hdf5").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging folder removed

    # Minari itself reads it back.
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path)
    try:
        assert "cartpole/random-v0" in minari.list_local_datasets()
        mds = minari.load_dataset("cartpole/random-v0")
        assert mds.total_episodes == 4
        assert mds.total_steps == sum(len(e) for e in episodes)
        for ep, theirs in zip(episodes, mds.iterate_episodes(), strict=True):
            assert theirs.observations.shape == (len(ep) + 1, 4)
            assert theirs.actions.shape == (len(ep),)
            np.testing.assert_array_equal(theirs.observations, ep.observations)
            np.testing.assert_array_equal(theirs.actions, ep.actions)
        assert mds.env_spec is not None and mds.env_spec.id == "CartPole-v1"
    finally:
        os.environ["MINARI_DATASETS_PATH"] = before

    ds = load_dataset("cartpole/random-v0", root=tmp_path)
    assert ds.dataset_id == "cartpole/random-v0"
    assert ds.observations.shape == (ds.n_transitions, 4) and ds.actions.shape == (ds.n_transitions,)
    assert ds.action_space == gym.spaces.Discrete(2)
    _check_matches(ds, episodes)
    np.testing.assert_allclose(ds.episode_returns(), [float(e.rewards.sum()) for e in episodes])

    # The same dataset by path: the dataset directory or its data/ directory.
    for path in (tmp_path / "cartpole" / "random-v0", data_dir):
        _check_matches(load_dataset(path), episodes)
    _check_matches(load_dataset(Path("cartpole/random-v0"), root=tmp_path), episodes)


def test_round_trip_pendulum_box_actions(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    episodes = collect_episodes(env, _random_policy(env), n_episodes=3, seed=1, max_episode_steps=25)
    write_dataset("pendulum-random-v0", episodes, "Pendulum-v1", None, None, root=tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path))
        mds = minari.load_dataset("pendulum-random-v0")
        assert mds.total_episodes == 3
        first = next(iter(mds.iterate_episodes()))
        assert first.observations.shape == (26, 3) and first.actions.shape == (25, 1)
    ds = load_dataset("pendulum-random-v0", root=tmp_path, env=env)
    assert ds.observations.shape == (75, 3) and ds.actions.shape == (75, 1)
    assert ds.observation_space == env.observation_space and ds.action_space == env.action_space
    _check_matches(ds, episodes)


def test_minari_native_datasets_read_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset made by plain Minari (list-based buffers, like DataCollector produces) reads the same."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("CartPole-v1")
    buffers = []
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        done = False
        while not done:
            action = int(env.action_space.sample())
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terms.append(terminated)
            truncs.append(truncated)
            done = terminated or truncated
        buffers.append(
            EpisodeBuffer(
                observations=observations,
                actions=actions,
                rewards=rewards,
                terminations=terms,
                truncations=truncs,
            )
        )
    minari.create_dataset_from_buffers("native/cartpole-v0", buffers, env="CartPole-v1", author="test")
    ds = load_dataset("native/cartpole-v0")  # default root = MINARI_DATASETS_PATH
    records = [
        EpisodeRecord(
            observations=np.asarray(b.observations),
            actions=np.asarray(b.actions),
            rewards=np.asarray(b.rewards),
            terminations=np.asarray(b.terminations),
            truncations=np.asarray(b.truncations),
        )
        for b in buffers
    ]
    _check_matches(ds, records)
    check_compatible(ds, env)
    # minari EpisodeBuffer objects are accepted by write_dataset too.
    write_dataset("native/copy-v0", buffers, "CartPole-v1", None, None)
    _check_matches(load_dataset("native/copy-v0"), records)


def test_data_collector_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("jax", reason="minari.DataCollector needs the minari[create] extra (jax)")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = minari.DataCollector(gym.make("CartPole-v1"))
    env.reset(seed=0)
    for _ in range(2):
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
        env.reset()
    env.create_dataset("collector/cartpole-v0", algorithm_name="random", author="test")
    mds = minari.load_dataset("collector/cartpole-v0")
    ds = load_dataset("collector/cartpole-v0")
    assert ds.n_episodes == mds.total_episodes and ds.n_transitions == mds.total_steps


def test_mc_returns_hand_checked(tmp_path: Path) -> None:
    obs_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    act_space = gym.spaces.Discrete(3)

    def record(rewards: list[float], terminal: bool) -> EpisodeRecord:
        t = len(rewards)
        return EpisodeRecord(
            observations=np.arange(2 * (t + 1), dtype=np.float32).reshape(t + 1, 2),
            actions=np.zeros(t, dtype=np.int64),
            rewards=np.asarray(rewards),
            terminations=np.asarray([False] * (t - 1) + [terminal]),
            truncations=np.asarray([False] * (t - 1) + [not terminal]),
        )

    episodes = [record([1.0, 2.0, 3.0], True), record([1.0, 1.0], False)]
    write_dataset("tiny-v0", episodes, None, obs_space, act_space, root=tmp_path)
    ds = load_dataset("tiny-v0", root=tmp_path)
    # gamma = 0.5: episode 0: G2 = 3, G1 = 2 + 1.5 = 3.5, G0 = 1 + 1.75 = 2.75; episode 1: 1.5, 1.
    np.testing.assert_allclose(ds.mc_returns(0.5), [2.75, 3.5, 3.0, 1.5, 1.0])
    np.testing.assert_allclose(ds.mc_returns(1.0), [6.0, 5.0, 3.0, 2.0, 1.0])
    np.testing.assert_allclose(ds.mc_returns(0.0), ds.rewards)
    assert ds.mc_returns(0.5).dtype == np.float32
    np.testing.assert_array_equal(ds.terminations, [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(ds.truncations, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(ds.next_observations[2], [6.0, 7.0])  # episode 0's final obs
    np.testing.assert_array_equal(ds.observations[3], [0.0, 1.0])  # episode 1's reset obs
    np.testing.assert_array_equal(ds.episode_starts, [True, False, False, True, False])
    assert ds.episode(-1).rewards.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="gamma"):
        ds.mc_returns(1.5)


# --------------------------------------------------------------------------------------------
# Errors


def test_space_mismatch(tmp_path: Path) -> None:
    _cartpole_dataset(tmp_path)
    pendulum = gym.make("Pendulum-v1")
    ds = load_dataset("cartpole/random-v0", root=tmp_path)
    with pytest.raises(DatasetError) as info:
        check_compatible(ds, pendulum)
    message = str(info.value)
    assert "\n" not in message
    assert "Discrete(2)" in message and "(1,), float32" in message  # both action spaces named
    assert "(4,), float32" in message and "(3,), float32" in message  # both observation spaces named
    with pytest.raises(DatasetError, match="does not fit env Pendulum-v1"):
        load_dataset("cartpole/random-v0", root=tmp_path, env=pendulum)
    check_compatible(ds, gym.make("CartPole-v1"))
    check_compatible(ds, gym.make_vec("CartPole-v1", num_envs=2))


def test_truncated_hdf5(tmp_path: Path) -> None:
    _cartpole_dataset(tmp_path)
    data_file = tmp_path / "cartpole" / "random-v0" / "data" / "main_data.hdf5"
    os.truncate(data_file, data_file.stat().st_size // 2)
    with pytest.raises(DatasetError, match="main_data.hdf5") as info:
        load_dataset("cartpole/random-v0", root=tmp_path)
    assert "\n" not in str(info.value)


def test_missing_episode_group(tmp_path: Path) -> None:
    _cartpole_dataset(tmp_path)
    metadata_file = tmp_path / "cartpole" / "random-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["total_episodes"] = 5  # more than the HDF5 file holds
    metadata_file.write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="main_data.hdf5"):
        load_dataset("cartpole/random-v0", root=tmp_path)


@pytest.mark.parametrize("content", ['{"total_episodes": 3, "data_fo', "[1, 2]", "{}", "\xff\xfe"])
def test_corrupt_metadata(tmp_path: Path, content: str) -> None:
    _cartpole_dataset(tmp_path)
    metadata_file = tmp_path / "cartpole" / "random-v0" / "data" / "metadata.json"
    metadata_file.write_bytes(content.encode("latin-1"))
    with pytest.raises(DatasetError, match="metadata.json") as info:
        load_dataset("cartpole/random-v0", root=tmp_path)
    assert "\n" not in str(info.value)


def test_bad_space_in_metadata(tmp_path: Path) -> None:
    _cartpole_dataset(tmp_path)
    metadata_file = tmp_path / "cartpole" / "random-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["observation_space"] = '{"type": "NoSuchSpace"}'
    metadata_file.write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="metadata.json"):
        load_dataset("cartpole/random-v0", root=tmp_path)


def test_missing_dataset_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(minari.storage.hosting, "download_dataset", no_download)
    with pytest.raises(DatasetError, match="not found locally") as info:
        load_dataset("cartpole/absent-v0", root=tmp_path)
    assert str(tmp_path / "cartpole" / "absent-v0" / "data") in str(info.value)
    assert "hybridpg collect" in str(info.value) and "--dataset-id cartpole/absent-v0" in str(info.value)
    with pytest.raises(DatasetError, match="no Minari dataset"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="name-v0"):
        load_dataset("no-version", root=tmp_path)


def test_invalid_ids_refused(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    episodes = collect_episodes(env, _random_policy(env), 1, 0)
    for bad in ("no-version", "../escape-v0", "/abs/path-v0", "has space-v0", ""):
        with pytest.raises(DatasetError, match="invalid dataset id"):
            write_dataset(bad, episodes, "CartPole-v1", None, None, root=tmp_path)
    assert _leftovers(tmp_path) == []


def test_refuse_overwrite(tmp_path: Path) -> None:
    _cartpole_dataset(tmp_path, "cartpole/random-v0", n=3)
    env = gym.make("CartPole-v1")
    more = collect_episodes(env, _random_policy(env), n_episodes=5, seed=10)
    with pytest.raises(DatasetError, match="already exists.*overwrite=True"):
        write_dataset("cartpole/random-v0", more, "CartPole-v1", None, None, root=tmp_path)
    assert load_dataset("cartpole/random-v0", root=tmp_path).n_episodes == 3
    write_dataset("cartpole/random-v0", more, "CartPole-v1", None, None, root=tmp_path, overwrite=True)
    _check_matches(load_dataset("cartpole/random-v0", root=tmp_path), more)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # A namespace folder is not a dataset and is never replaced, even with overwrite=True.
    _cartpole_dataset(tmp_path, "group-v0/member-v0", n=1)
    with pytest.raises(DatasetError, match="not a Minari dataset"):
        write_dataset("group-v0", more, "CartPole-v1", None, None, root=tmp_path, overwrite=True)
    assert load_dataset("group-v0/member-v0", root=tmp_path).n_episodes == 1


def test_path_escape_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    _cartpole_dataset(outside, "stolen-v0")
    _cartpole_dataset(root, "inside-v0")
    for escaping in ("../outside/stolen-v0", "inside-v0/../../outside/stolen-v0", str(outside / "stolen-v0")):
        with pytest.raises(DatasetError, match="escapes the dataset root"):
            load_dataset(escaping, root=root)
    with pytest.raises(DatasetError, match="escapes the dataset root"):
        load_dataset(outside / "stolen-v0", root=root)
    (root / "link-v0").symlink_to(outside / "stolen-v0")
    with pytest.raises(DatasetError, match="escapes the dataset root"):
        load_dataset("link-v0", root=root)
    # Inside the root, absolute paths are fine; without a root, any path is.
    assert load_dataset(root / "inside-v0", root=root).n_episodes == 3
    assert load_dataset(outside / "stolen-v0").n_episodes == 3


def test_no_partial_directory_on_invalid_episodes(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    good = collect_episodes(env, _random_policy(env), 2, 0)
    bad_obs = EpisodeRecord(
        observations=good[1].observations[:, :3],  # 3 features instead of 4
        actions=good[1].actions,
        rewards=good[1].rewards,
        terminations=good[1].terminations,
        truncations=good[1].truncations,
    )
    missing_final = EpisodeRecord(
        observations=good[1].observations[:-1],  # T rows instead of T + 1
        actions=good[1].actions,
        rewards=good[1].rewards,
        terminations=good[1].terminations,
        truncations=good[1].truncations,
    )
    for bad, pattern in ((bad_obs, "episode 1: observations has shape"), (missing_final, "expected")):
        with pytest.raises(DatasetError, match=pattern):
            write_dataset("cartpole/bad-v0", [good[0], bad], "CartPole-v1", None, None, root=tmp_path)
    with pytest.raises(DatasetError, match="no episodes"):
        write_dataset("cartpole/bad-v0", [], "CartPole-v1", None, None, root=tmp_path)
    assert not (tmp_path / "cartpole" / "bad-v0").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".hybridpg")]


def test_no_partial_directory_when_minari_fails_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = HDF5Storage.update_episodes

    def fail_after_first(self: Any, episodes: Any) -> None:
        episodes = list(episodes)
        original(self, episodes[:1])  # part of the data is on disk when the failure hits
        raise OSError("simulated disk full")

    env = gym.make("CartPole-v1")
    old = _cartpole_dataset(tmp_path, "cartpole/random-v0", n=2)
    new = collect_episodes(env, _random_policy(env), 3, 7)
    monkeypatch.setattr(HDF5Storage, "update_episodes", fail_after_first)
    with pytest.raises(DatasetError, match="simulated disk full"):
        write_dataset("cartpole/other-v0", new, "CartPole-v1", None, None, root=tmp_path)
    with pytest.raises(DatasetError, match="simulated disk full"):
        write_dataset("cartpole/random-v0", new, "CartPole-v1", None, None, root=tmp_path, overwrite=True)
    monkeypatch.undo()
    assert not (tmp_path / "cartpole" / "other-v0").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    _check_matches(load_dataset("cartpole/random-v0", root=tmp_path), old)  # old dataset kept intact


def _plant_code_running_dataset(root: Path, marker: Path) -> None:
    """A dataset whose every field that could name a callable names ``os.system`` writing ``marker``."""
    env = gym.make("Pendulum-v1")
    episodes = collect_episodes(env, _random_policy(env), n_episodes=2, seed=0)
    write_dataset("evil-v0", episodes, "Pendulum-v1", None, None, root=root)
    env.close()
    metadata_file = root / "evil-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    command = {"command": f"touch {marker}"}
    hostile_spec = {
        "id": "Evil-v0",
        "entry_point": "os:system",
        "vector_entry_point": "os:system",
        "reward_threshold": None,
        "nondeterministic": False,
        "max_episode_steps": None,
        "order_enforce": True,
        "disable_env_checker": True,
        "kwargs": command,
        "additional_wrappers": [{"name": "W", "entry_point": "os:system", "kwargs": command}],
    }
    for key in ("observation_space", "action_space"):
        metadata.pop(key)  # Minari would rebuild these with gym.make(env_spec)
    metadata["env_spec"] = json.dumps(hostile_spec)
    metadata["eval_env_spec"] = json.dumps(hostile_spec)
    metadata_file.write_text(json.dumps(metadata))


def test_a_dataset_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _plant_code_running_dataset(tmp_path, marker)
    with pytest.raises(DatasetError, match="never builds an env") as info:
        load_dataset("evil-v0", root=tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetError, match="never builds an env"):
        load_dataset(tmp_path / "evil-v0")
    # With the user's env the spaces come from it and the data still reads; the env_spec stays text.
    env = gym.make("Pendulum-v1")
    ds = load_dataset("evil-v0", root=tmp_path, env=env)
    assert ds.n_episodes == 2 and ds.observation_space == env.observation_space
    assert not marker.exists()


def test_the_cli_never_runs_a_datasets_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "ran"
    _plant_code_running_dataset(tmp_path, marker)
    for algo in ("ppo", "hnpg"):
        command = [sys.executable, "-m", "hybridpg", "train", "--algo", algo, "--env", "Pendulum-v1"]
        command += ["--total-timesteps", "256", "--n-steps", "256", "--eval-episodes", "1"]
        command += ["--offline-dataset", "evil-v0"]
        command += ["--offline-root", str(tmp_path), "--run-dir", str(tmp_path / f"run-{algo}")]
        command += ["--bc-steps", "2"] if algo == "ppo" else []
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert not marker.exists(), f"{algo}: the dataset ran code"
        # The env the user named supplies the spaces, so the run trains on the dataset's data.
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"run-{algo}" / "summary.json").is_file()


def test_dataset_ids_never_leave_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    _cartpole_dataset(tmp_path, "outside-v0")
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.chdir(root)  # so that '..' relative to the working folder would find the dataset
    for escaping in ("../outside-v0", "ns/../../outside-v0"):
        with pytest.raises(DatasetError, match="'..'") as info:
            load_dataset(escaping, root=root)
        assert "\n" not in str(info.value)
        with pytest.raises(DatasetError, match="'..'"):
            load_dataset(escaping)
    assert load_dataset(tmp_path / "outside-v0").n_episodes == 3  # an explicit path is the user's choice


def test_metadata_listing_fewer_episodes_than_the_data_is_refused(tmp_path: Path) -> None:
    _cartpole_dataset(tmp_path, n=10)
    metadata_file = tmp_path / "cartpole" / "random-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["total_episodes"] = 3
    metadata_file.write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="lists 3 episodes but the data holds more"):
        load_dataset("cartpole/random-v0", root=tmp_path)
    metadata["total_episodes"] = 10
    metadata["total_steps"] += 1
    metadata_file.write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="steps but the episodes hold"):
        load_dataset("cartpole/random-v0", root=tmp_path)
