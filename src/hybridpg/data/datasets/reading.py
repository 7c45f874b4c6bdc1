"""Reading a Minari dataset as data: nothing is downloaded, imported, called or made into an env."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.dataset._storages import get_minari_storage, get_storage_keys
from minari.serialization import deserialize_space

from hybridpg.data.datasets.common import (
    _READ_ERRORS,
    DATA_DIR_NAME,
    HDF5_FILE_NAME,
    METADATA_FILE_NAME,
    FloatArray,
    _describe,
    _error,
    _inside,
    _is_dataset_id,
    _is_minari_dataset_dir,
    _require_supported,
    _resolve_root,
    _spaces_equal,
)
from hybridpg.data.datasets.offline import OfflineDataset
from hybridpg.errors import DatasetError


def _locate(dataset_id_or_path: str | os.PathLike[str], root: Path | str | None) -> tuple[Path, str | None]:
    """Return (data directory, dataset id or None) or raise DatasetError."""
    root_path = _resolve_root(root)
    if isinstance(dataset_id_or_path, str) and _is_dataset_id(dataset_id_or_path):
        dataset_id = dataset_id_or_path
        dataset_dir = _inside(root_path / dataset_id, root_path)
        data_dir = dataset_dir / DATA_DIR_NAME
        if not data_dir.is_dir():
            raise _error(
                f"dataset {dataset_id!r} not found locally: looked in {data_dir} "
                f"(root {root_path}); datasets are never downloaded: create it with hybridpg collect --env ENV "
                f"--policy random --episodes N --dataset-id {dataset_id} --out {root_path} (or write_dataset)"
            )
        return data_dir, dataset_id

    if not isinstance(dataset_id_or_path, str | os.PathLike):
        raise _error(f"expected a dataset id or a path, got {type(dataset_id_or_path).__name__}")
    if isinstance(dataset_id_or_path, str) and ".." in Path(dataset_id_or_path).parts:
        # a name typed where an id goes must not walk out of the dataset root
        raise _error(
            f"dataset {dataset_id_or_path!r} contains '..', which escapes the dataset root; "
            "give an id or a path without it"
        )
    path = Path(dataset_id_or_path).expanduser()
    if root is not None:
        path = _inside(path if path.is_absolute() else root_path / path, root_path)
    else:
        path = path.resolve()
    if (path / DATA_DIR_NAME / METADATA_FILE_NAME).is_file() or _is_minari_dataset_dir(path):
        return path / DATA_DIR_NAME, None
    if (path / METADATA_FILE_NAME).is_file():
        return path, None
    hint = "" if _is_dataset_id(str(dataset_id_or_path)) else " (ids look like 'name-v0' or 'ns/name-v0')"
    raise _error(
        f"no Minari dataset at {path}: expected {path / DATA_DIR_NAME / METADATA_FILE_NAME}{hint}; "
        "datasets are never downloaded"
    )


_REQUIRED_METADATA_KEYS = ("dataset_id", "data_format", "minari_version", "total_episodes", "total_steps")


def _read_metadata(metadata_path: Path) -> dict[str, Any]:
    try:
        with open(metadata_path, encoding="utf-8") as file:
            metadata = json.load(file)
    except FileNotFoundError as exc:
        raise _error(f"dataset metadata file {metadata_path} is missing") from exc
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _error(f"corrupt dataset metadata file {metadata_path}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise _error(f"corrupt dataset metadata file {metadata_path}: expected a JSON object")
    missing = [key for key in _REQUIRED_METADATA_KEYS if key not in metadata]
    if missing:
        raise _error(f"corrupt dataset metadata file {metadata_path}: missing {', '.join(missing)}")
    return metadata


def _episode_arrays(
    episode: dict[str, Any], index: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...], data_file: Path
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    rewards = np.asarray(episode["rewards"], dtype=np.float32).reshape(-1)
    steps = len(rewards)
    observations = np.asarray(episode["observations"], dtype=np.float32)
    actions = np.asarray(episode["actions"], dtype=np.float32)
    terminations = np.asarray(episode["terminations"], dtype=np.float32).reshape(-1)
    truncations = np.asarray(episode["truncations"], dtype=np.float32).reshape(-1)
    checks = {
        "observations": (observations.shape, (steps + 1, *obs_shape)),
        "actions": (actions.shape, (steps, *act_shape)),
        "terminations": (terminations.shape, (steps,)),
        "truncations": (truncations.shape, (steps,)),
    }
    for name, (actual, expected) in checks.items():
        if actual != expected:
            raise _error(
                f"corrupt dataset file {data_file}: episode {index} {name} has shape {actual}, "
                f"expected {expected} for {steps} steps"
            )
    return observations, actions, rewards, terminations, truncations


def _metadata_space(
    metadata: dict[str, Any], key: str, fallback: gym.Space[Any] | None, metadata_path: Path
) -> gym.Space[Any]:
    """A space from the metadata's own serialized field, else the user's env; never from ``env_spec``.

    Minari rebuilds missing spaces with ``gym.make(env_spec)``, which imports whatever entry point
    the file names: a dataset is data, so that path is never taken here.
    """
    raw = metadata.get(key)
    if raw is None:
        if fallback is not None:
            return fallback
        raise _error(
            f"dataset metadata file {metadata_path} has no {key}; hybridpg never builds an env from a "
            "dataset's env_spec, so pass the env the data came from"
        )
    if not isinstance(raw, str):
        raise _error(f"corrupt dataset metadata file {metadata_path}: {key} is not a serialized space")
    try:
        return deserialize_space(raw)
    except _READ_ERRORS as exc:
        raise _error(f"invalid {key} in dataset metadata file {metadata_path}: {_describe(exc)}") from exc


def _open_storage(
    data_dir: Path, metadata: dict[str, Any], env: gym.Env[Any, Any] | gym.vector.VectorEnv[Any, Any, Any] | None
) -> Any:
    """Minari's storage reader for ``data_dir`` with spaces taken only from data (see _metadata_space)."""
    metadata_path = data_dir / METADATA_FILE_NAME
    env_obs = env_act = None
    if env is not None:
        if isinstance(env, gym.vector.VectorEnv):
            env_obs, env_act = env.single_observation_space, env.single_action_space
        else:
            env_obs, env_act = env.observation_space, env.action_space
    observation_space = _metadata_space(metadata, "observation_space", env_obs, metadata_path)
    action_space = _metadata_space(metadata, "action_space", env_act, metadata_path)
    data_format = metadata["data_format"]
    if data_format not in get_storage_keys():
        raise _error(
            f"corrupt dataset metadata file {metadata_path}: unknown data_format {data_format!r} "
            f"(Minari knows {', '.join(get_storage_keys())})"
        )
    if metadata["minari_version"] not in minari.supported_dataset_versions:
        raise _error(
            f"dataset {metadata_path} was written by Minari {metadata['minari_version']!r}, which the "
            f"installed Minari {minari.__version__} does not read"
        )
    for key in ("total_episodes", "total_steps"):
        if not isinstance(metadata[key], int) or isinstance(metadata[key], bool) or metadata[key] < 0:
            raise _error(f"corrupt dataset metadata file {metadata_path}: {key} is not a count")
    if not isinstance(metadata["dataset_id"], str):
        raise _error(f"corrupt dataset metadata file {metadata_path}: dataset_id is not text")
    try:
        storage_class = get_minari_storage(data_format)
        jpeg = metadata.get("jpeg_encoding") is True
        return storage_class(data_dir, observation_space, action_space, jpeg_encoding=jpeg)
    except _READ_ERRORS as exc:
        raise _error(f"unreadable dataset {data_dir}: {_describe(exc)}") from exc


def _has_episode(storage: Any, index: int) -> bool:
    try:
        for _ in storage.get_episodes([index]):
            return True
    except _READ_ERRORS:
        return False
    return False


def load_dataset(
    dataset_id_or_path: str | os.PathLike[str],
    root: Path | str | None = None,
    env: gym.Env[Any, Any] | gym.vector.VectorEnv[Any, Any, Any] | None = None,
) -> OfflineDataset:
    """Read a Minari dataset into an :class:`OfflineDataset`; nothing is ever downloaded or run.

    ``dataset_id_or_path`` is a dataset id (a ``str`` like ``'ns/name-v0'``, looked up under
    ``root`` or Minari's default root) or a path to a dataset directory (``<dir>`` holding
    ``data/metadata.json``, or that ``data`` directory). Strings that are not valid ids are treated
    as paths. When ``root`` is given, relative paths are taken inside it and any path resolving
    outside it (``..``, absolute paths elsewhere, symlinks) is refused. Every field of the dataset is
    data: spaces come from its serialized ``observation_space``/``action_space`` or, where those are
    missing, from ``env``; its ``env_spec`` is never made. If ``env`` is given, its spaces must match
    the dataset's (see :func:`check_compatible`). The episodes in the file must be exactly those the
    metadata counts.
    """
    data_dir, _ = _locate(dataset_id_or_path, root)
    metadata_path = data_dir / METADATA_FILE_NAME
    metadata = _read_metadata(metadata_path)
    data_format = metadata.get("data_format", "hdf5")
    data_file = data_dir / HDF5_FILE_NAME if data_format == "hdf5" else data_dir
    if data_format == "hdf5" and not data_file.is_file():
        raise _error(f"dataset file {data_file} is missing")

    storage = _open_storage(data_dir, metadata, env)
    observation_space = storage.observation_space
    action_space = storage.action_space
    total_episodes = int(metadata["total_episodes"])
    name = metadata["dataset_id"]
    where = f"dataset {name!r} ({metadata_path})"
    obs_shape = _require_supported(observation_space, "observation", where)
    act_shape = _require_supported(action_space, "action", where)

    parts: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]] = []
    try:
        for index, episode in enumerate(storage.get_episodes(range(total_episodes))):
            parts.append(_episode_arrays(episode, index, obs_shape, act_shape, data_file))
    except DatasetError:
        raise
    except _READ_ERRORS as exc:
        raise _error(f"corrupt or truncated dataset file {data_file}: {_describe(exc)}") from exc
    if len(parts) != total_episodes:
        raise _error(f"corrupt dataset file {data_file}: read {len(parts)} of {total_episodes} episodes")
    if _has_episode(storage, total_episodes):
        raise _error(
            f"corrupt dataset {metadata_path}: the metadata lists {total_episodes} episodes but the data "
            "holds more; refused"
        )

    lengths = np.asarray([len(part[2]) for part in parts], dtype=np.int64)
    if int(lengths.sum()) != int(metadata["total_steps"]):
        raise _error(
            f"corrupt dataset {metadata_path}: the metadata lists {metadata['total_steps']} steps but the "
            f"episodes hold {int(lengths.sum())}; refused"
        )
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)]).astype(np.int64)

    def stack(arrays: list[FloatArray], tail: tuple[int, ...]) -> FloatArray:
        if not arrays:
            return np.zeros((0, *tail), dtype=np.float32)
        return np.concatenate(arrays, axis=0).astype(np.float32, copy=False)

    dataset = OfflineDataset(
        observations=stack([p[0][:-1] for p in parts], obs_shape),
        actions=stack([p[1] for p in parts], act_shape),
        rewards=stack([p[2] for p in parts], ()),
        next_observations=stack([p[0][1:] for p in parts], obs_shape),
        terminations=stack([p[3] for p in parts], ()),
        truncations=stack([p[4] for p in parts], ()),
        episode_ids=np.repeat(np.arange(len(parts), dtype=np.int64), lengths),
        episode_offsets=offsets,
        observation_space=observation_space,
        action_space=action_space,
        dataset_id=name,
        data_path=data_dir,
    )
    if env is not None:
        check_compatible(dataset, env)
    return dataset


def check_compatible(
    dataset: OfflineDataset, env: gym.Env[Any, Any] | gym.vector.VectorEnv[Any, Any, Any]
) -> None:
    """Raise ``DatasetError`` unless the dataset's observation and action spaces equal the env's.

    For a vector env the single-env spaces are compared. Box spaces must agree in shape, dtype and
    bounds; other spaces must be equal.
    """
    if isinstance(env, gym.vector.VectorEnv):
        env_obs, env_act = env.single_observation_space, env.single_action_space
    else:
        env_obs, env_act = env.observation_space, env.action_space
    problems = []
    if not _spaces_equal(dataset.observation_space, env_obs):
        problems.append(
            f"dataset observation space {dataset.observation_space!r} != env observation space {env_obs!r}"
        )
    if not _spaces_equal(dataset.action_space, env_act):
        problems.append(f"dataset action space {dataset.action_space!r} != env action space {env_act!r}")
    if problems:
        env_name = env.spec.id if env.spec is not None else type(env).__name__
        raise _error(f"dataset {dataset.dataset_id!r} does not fit env {env_name}: " + "; ".join(problems))
