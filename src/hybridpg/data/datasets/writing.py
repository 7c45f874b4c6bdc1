"""Writing episodes as a Minari dataset, atomically (staging folder, then one rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec

from hybridpg.data.datasets.common import (
    _NAMESPACE_METADATA_FILE_NAME,
    _READ_ERRORS,
    _STAGING_PREFIX,
    _check_dataset_id,
    _describe,
    _error,
    _inside,
    _is_minari_dataset_dir,
    _minari_root,
    _one_line,
    _require_supported,
    _resolve_root,
)
from hybridpg.data.datasets.episodes import EpisodeRecord
from hybridpg.errors import EnvError

# --------------------------------------------------------------------------------------------
# Writing


def _as_record(index: int, episode: Any) -> EpisodeRecord:
    if isinstance(episode, EpisodeRecord):
        return episode
    fields = ("observations", "actions", "rewards", "terminations", "truncations")
    if not all(hasattr(episode, name) for name in fields):
        raise _error(f"episode {index} is a {type(episode).__name__}, not an EpisodeRecord or EpisodeBuffer")
    values = {name: getattr(episode, name) for name in fields}
    for name, value in values.items():
        if value is None or isinstance(value, dict | tuple):
            raise _error(f"episode {index}: {name} must be an array (Dict/Tuple spaces are not supported)")
    try:
        arrays = {name: np.asarray(value) for name, value in values.items()}
    except ValueError as exc:
        raise _error(f"episode {index}: ragged data ({exc})") from exc
    return EpisodeRecord(seed=getattr(episode, "seed", None), **arrays)


def _validate_record(
    index: int, record: EpisodeRecord, obs_shape: tuple[int, ...], act_shape: tuple[int, ...]
) -> None:
    steps = len(record.rewards)
    prefix = f"episode {index}"
    if np.ndim(record.rewards) != 1:
        raise _error(f"{prefix}: rewards must be 1-D, got shape {np.shape(record.rewards)}")
    if steps == 0:
        raise _error(f"{prefix} has no steps")
    expected = {
        "observations": (steps + 1, *obs_shape),
        "actions": (steps, *act_shape),
        "terminations": (steps,),
        "truncations": (steps,),
    }
    for name, shape in expected.items():
        actual = np.shape(getattr(record, name))
        if actual != shape:
            raise _error(f"{prefix}: {name} has shape {actual}, expected {shape} for {steps} steps")
    for name in ("observations", "rewards"):
        value = np.asarray(getattr(record, name))
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise _error(f"{prefix}: {name} has non-numeric dtype {value.dtype}")
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise _error(f"{prefix}: {name} contains NaN or inf")


def _resolve_env_spec(env_id_or_spec: str | EnvSpec | None) -> EnvSpec | None:
    if env_id_or_spec is None or isinstance(env_id_or_spec, EnvSpec):
        return env_id_or_spec
    try:
        return gym.spec(env_id_or_spec)
    except gym.error.Error as exc:
        raise EnvError(_one_line(f"unknown environment id {env_id_or_spec!r}: {exc}")) from exc




def _copy_namespace_metadata(staging: Path, root: Path, dataset_id: str) -> None:
    """Give the namespaces of ``dataset_id`` the marker files Minari created in the staging root."""
    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        relative = Path(*parts[:depth])
        source = staging / relative / _NAMESPACE_METADATA_FILE_NAME
        target = root / relative / _NAMESPACE_METADATA_FILE_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_file() and not target.exists():
            shutil.copyfile(source, target)


_MINARI_NAG_PATTERNS = (r"`\w+` is set to None", r"env_spec is None")


def write_dataset(
    dataset_id: str,
    episodes: Sequence[EpisodeRecord | Any],
    env_id_or_spec: str | EnvSpec | None,
    observation_space: gym.Space[Any] | None,
    action_space: gym.Space[Any] | None,
    root: Path | str | None = None,
    *,
    algorithm_name: str = "hybridpg",
    author: str = "hybridpg",
    author_email: str | None = None,
    code_permalink: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as the Minari dataset ``dataset_id`` and return its directory.

    ``episodes`` are :class:`EpisodeRecord` or ``minari`` ``EpisodeBuffer`` objects with array data.
    ``env_id_or_spec`` (a registered id or an ``EnvSpec``; None for none) is stored in the metadata;
    if either space is None it is taken from that env. The dataset goes to
    ``<root>/<dataset_id>/`` (``root`` defaults to Minari's root). It is written with
    ``minari.create_dataset_from_buffers`` into a hidden staging folder under the root and moved into
    place when complete, so nothing is left behind on failure. An existing dataset raises
    ``DatasetError`` unless ``overwrite=True``, which replaces it only once the new one is written.
    """
    _check_dataset_id(dataset_id)
    root_path = _resolve_root(root)
    target = _inside(root_path / dataset_id, root_path)
    if target.exists():
        if not _is_minari_dataset_dir(target):
            raise _error(f"cannot write dataset {dataset_id!r}: {target} exists and is not a Minari dataset")
        if not overwrite:
            raise _error(
                f"dataset {dataset_id!r} already exists at {target}; pass overwrite=True to replace it"
            )

    env_spec = _resolve_env_spec(env_id_or_spec)
    if observation_space is None or action_space is None:
        if env_spec is None:
            raise _error("write_dataset needs observation_space and action_space when no env is given")
        probe = gym.make(env_spec)
        try:
            if observation_space is None:
                observation_space = probe.observation_space
            if action_space is None:
                action_space = probe.action_space
        finally:
            probe.close()
    where = f"dataset {dataset_id!r}"
    obs_shape = _require_supported(observation_space, "observation", where)
    act_shape = _require_supported(action_space, "action", where)

    if len(episodes) == 0:
        raise _error(f"cannot write dataset {dataset_id!r}: no episodes")
    records = [_as_record(i, episode) for i, episode in enumerate(episodes)]
    for i, record in enumerate(records):
        _validate_record(i, record, obs_shape, act_shape)

    root_path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root_path))
    try:
        try:
            with _minari_root(staging), warnings.catch_warnings():
                for pattern in _MINARI_NAG_PATTERNS:
                    warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
                created = minari.create_dataset_from_buffers(
                    dataset_id,
                    [record.to_minari_buffer() for record in records],
                    env=env_spec,
                    algorithm_name=algorithm_name,
                    author=author,
                    author_email=author_email,
                    code_permalink=code_permalink,
                    observation_space=observation_space,
                    action_space=action_space,
                    description=description
                    or f"{len(records)} episodes written by hybridpg.data.datasets.write_dataset",
                )
                written = int(created.total_episodes)
        except _READ_ERRORS as exc:
            raise _error(f"failed to write dataset {dataset_id!r}: {_describe(exc)}") from exc
        if written != len(records):
            raise _error(
                f"failed to write dataset {dataset_id!r}: wrote {written} of {len(records)} episodes"
            )

        staged = staging / dataset_id
        try:
            _copy_namespace_metadata(staging, root_path, dataset_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # overwrite=True: swap the old dataset out, keep it until the new is in
                backup = staging / ".previous"
                os.replace(target, backup)
                try:
                    os.replace(staged, target)
                except OSError:
                    os.replace(backup, target)
                    raise
            else:
                os.replace(staged, target)
        except OSError as exc:
            raise _error(f"failed to move dataset {dataset_id!r} into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
