"""Offline datasets stored in Minari's own on-disk format.

A Minari dataset with id ``ns/name-v0`` lives in ``<root>/ns/name-v0/data/`` as ``metadata.json``
plus ``main_data.hdf5``. ``<root>`` is the ``root`` argument of the functions below, or else
``$MINARI_DATASETS_PATH``, or else ``~/.minari/datasets`` (Minari's own default).

* :func:`collect_episodes` rolls a policy out in one ``gymnasium.Env`` and records raw episodes.
* :func:`write_dataset` writes episodes with ``minari.create_dataset_from_buffers``. The dataset is
  built in a hidden staging folder under the root and moved into place only once complete, so a
  failure never leaves a half-written dataset behind; an existing dataset is replaced only with
  ``overwrite=True``.
* :func:`load_dataset` reads a dataset (by id or by a directory path) through Minari's storage
  reader into an :class:`OfflineDataset` of flat float32 arrays. Nothing is downloaded, and no
  field of the dataset is imported, called or made into an env.
* :func:`check_compatible` checks a dataset's spaces against an environment.

Every user-fixable problem (unknown id, malformed id, corrupt or truncated file, space mismatch, a
path outside the root, an existing dataset) raises :class:`hybridpg.errors.DatasetError` with a
one-line message.

Dataset ids (Minari 0.5): ``name-v<N>`` or ``namespace/name-v<N>`` (namespaces may nest, e.g.
``a/b/name-v0``); names use letters, digits, ``_`` and ``-``. The ``-v<N>`` version suffix is
required: Minari's regex marks it optional, but ``parse_dataset_id`` fails without it.

Only array spaces are supported for observations and actions: ``Box``, ``Discrete``,
``MultiDiscrete`` and ``MultiBinary`` (not ``Dict``/``Tuple``/``Text``).

The functions temporarily set ``MINARI_DATASETS_PATH`` while calling Minari (it has no other way to
choose a root) and restore it afterwards; calls from this module are serialised by a lock, but other
code reading that variable from another thread at the same moment could see the temporary value.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.dataset._storages import get_minari_storage, get_storage_keys
from minari.dataset.minari_dataset import parse_dataset_id
from minari.serialization import deserialize_space

from hybridpg.errors import ConfigError, DatasetError, EnvError, NonFiniteError

__all__ = [
    "DATA_DIR_NAME",
    "HDF5_FILE_NAME",
    "METADATA_FILE_NAME",
    "EpisodeRecord",
    "EpisodeSlice",
    "OfflineDataset",
    "check_compatible",
    "collect_episodes",
    "default_root",
    "load_dataset",
    "write_dataset",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

DATA_DIR_NAME = "data"
METADATA_FILE_NAME = "metadata.json"
HDF5_FILE_NAME = "main_data.hdf5"
_NAMESPACE_METADATA_FILE_NAME = "namespace_metadata.json"
_ROOT_ENV_VAR = "MINARI_DATASETS_PATH"
_STAGING_PREFIX = ".hybridpg-staging-"
_ENV_LOCK = threading.RLock()

# Errors that Minari, h5py and json raise for bad files; all become DatasetError.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AssertionError,
    AttributeError,
    RuntimeError,
    gym.error.Error,
)


def _one_line(text: str) -> str:
    """Collapse whitespace (numpy reprs of long Box bounds span several lines)."""
    return " ".join(text.split())


def _error(message: str) -> DatasetError:
    return DatasetError(_one_line(message))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Spaces


def _item_shape(space: gym.Space[Any]) -> tuple[int, ...] | None:
    """Shape of one element of an array space, or None for unsupported spaces."""
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return tuple(int(d) for d in space.shape)
    if isinstance(space, spaces.Discrete):
        return ()
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(int(d) for d in space.nvec.shape)
    return None


def _require_supported(space: gym.Space[Any], what: str, where: str) -> tuple[int, ...]:
    shape = _item_shape(space)
    if shape is None:
        raise _error(
            f"{where}: unsupported {what} space {space!r}; only Box, Discrete, MultiDiscrete and "
            "MultiBinary spaces are supported"
        )
    return shape


def _spaces_equal(a: gym.Space[Any], b: gym.Space[Any]) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Box) and isinstance(b, spaces.Box):
        return (
            a.shape == b.shape
            and a.dtype == b.dtype
            and np.array_equal(a.low, b.low)
            and np.array_equal(a.high, b.high)
        )
    return bool(a == b)


# --------------------------------------------------------------------------------------------
# Roots, ids and paths


def default_root() -> Path:
    """Minari's dataset root: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (not created)."""
    env_value = os.environ.get(_ROOT_ENV_VAR)
    if env_value:
        return Path(env_value).expanduser().resolve()
    return (Path.home() / ".minari" / "datasets").resolve()


def _resolve_root(root: Path | str | None) -> Path:
    return default_root() if root is None else Path(root).expanduser().resolve()


def _is_dataset_id(text: str) -> bool:
    try:
        parse_dataset_id(text)
    except (ValueError, TypeError):
        return False
    return True


def _check_dataset_id(dataset_id: str) -> None:
    if not isinstance(dataset_id, str) or not _is_dataset_id(dataset_id):
        raise _error(
            f"invalid dataset id {dataset_id!r}: Minari ids look like 'name-v0' or "
            "'namespace/name-v0' (letters, digits, '_' and '-'; the '-v<N>' version is required)"
        )


def _inside(path: Path, root: Path) -> Path:
    """Resolve ``path`` (symlinks included) and refuse it unless it lies inside ``root``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise _error(f"path {str(path)!r} escapes the dataset root {str(root)!r}; refused")
    return resolved


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the duration of the block, then restore the variable."""
    with _ENV_LOCK:
        previous = os.environ.get(_ROOT_ENV_VAR)
        os.environ[_ROOT_ENV_VAR] = str(root)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(_ROOT_ENV_VAR, None)
            else:
                os.environ[_ROOT_ENV_VAR] = previous


# --------------------------------------------------------------------------------------------
# Collecting


@dataclass(frozen=True, eq=False)
class EpisodeRecord:
    """One raw episode with ``T`` steps, as written to a Minari dataset.

    ``observations`` has ``T + 1`` rows (the reset observation, then one per step, so the final
    observation is included); ``actions``, ``rewards``, ``terminations`` and ``truncations`` have
    ``T`` rows. ``seed`` is the seed passed to ``env.reset`` (stored by Minari per episode).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None

    def __len__(self) -> int:
        return int(len(self.rewards))

    def to_minari_buffer(self) -> Any:
        """This episode as a ``minari.data_collector.EpisodeBuffer``."""
        return EpisodeBuffer(
            seed=self.seed,
            observations=self.observations,
            actions=self.actions,
            rewards=self.rewards,
            terminations=self.terminations,
            truncations=self.truncations,
        )


def _env_action(raw: np.ndarray | int, space: gym.Space[Any], shape: tuple[int, ...]) -> Any:
    array = np.asarray(raw)
    if isinstance(space, spaces.Discrete):
        value = array.reshape(()) if array.size == 1 else None
        if value is None or not np.issubdtype(value.dtype, np.number) or value != np.round(value):
            raise EnvError(f"policy returned {raw!r}; a Discrete action space needs one integer")
        return int(value)
    if array.size != int(np.prod(shape)):
        raise EnvError(f"policy returned an action of shape {array.shape}; the action space needs {shape}")
    dtype = space.dtype if space.dtype is not None else np.float32
    return array.astype(dtype, copy=False).reshape(shape)


def _check_finite(value: Any, what: str, episode: int, step: int) -> None:
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise NonFiniteError(f"environment returned a non-finite {what} in episode {episode} at step {step}")


def collect_episodes(
    env: gym.Env[Any, Any],
    policy: Callable[[np.ndarray], np.ndarray | int],
    n_episodes: int,
    seed: int,
    *,
    max_episode_steps: int | None = None,
) -> list[EpisodeRecord]:
    """Roll ``policy`` out in a single env for ``n_episodes`` episodes and record them raw.

    Episode ``i`` starts with ``env.reset(seed=seed + i)`` so each one is reproducible on its own;
    ``env.action_space`` is seeded with ``seed`` too (for policies that sample from it). The policy
    gets the raw observation as an array and returns an action (an ``int`` for Discrete actions).
    ``max_episode_steps`` cuts episodes of envs without a time limit (the cut step is recorded as a
    truncation). Raises ``EnvError`` for a vector env or a wrongly shaped action, ``NonFiniteError``
    for NaN/inf from the env.
    """
    if isinstance(env, gym.vector.VectorEnv) or not isinstance(env, gym.Env):
        raise EnvError(f"collect_episodes needs a single gymnasium.Env, got {type(env).__name__}")
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be positive or None, got {max_episode_steps!r}")
    where = f"env {env.spec.id if env.spec is not None else type(env).__name__}"
    obs_space, act_space = env.observation_space, env.action_space
    obs_shape = _require_supported(obs_space, "observation", where)
    act_shape = _require_supported(act_space, "action", where)
    obs_dtype = obs_space.dtype if obs_space.dtype is not None else np.float32
    act_dtype = act_space.dtype if act_space.dtype is not None else np.float32

    act_space.seed(seed)
    episodes: list[EpisodeRecord] = []
    for index in range(n_episodes):
        episode_seed = seed + index
        obs, _ = env.reset(seed=episode_seed)
        _check_finite(obs, "observation", index, 0)
        observations: list[np.ndarray] = [np.asarray(obs)]
        actions: list[Any] = []
        rewards: list[float] = []
        terminations: list[bool] = []
        truncations: list[bool] = []
        while True:
            action = _env_action(policy(np.asarray(obs)), act_space, act_shape)
            obs, reward, terminated, truncated, _ = env.step(action)
            step = len(rewards) + 1
            _check_finite(obs, "observation", index, step)
            _check_finite(reward, "reward", index, step)
            if max_episode_steps is not None and step >= max_episode_steps:
                truncated = True
            observations.append(np.asarray(obs))
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated) and not bool(terminated))
            if terminated or truncated:
                break
        episodes.append(
            EpisodeRecord(
                observations=np.asarray(observations, dtype=obs_dtype).reshape(-1, *obs_shape),
                actions=np.asarray(actions, dtype=act_dtype).reshape(-1, *act_shape),
                rewards=np.asarray(rewards, dtype=np.float64),
                terminations=np.asarray(terminations, dtype=bool),
                truncations=np.asarray(truncations, dtype=bool),
                seed=episode_seed,
            )
        )
    return episodes


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


def _is_minari_dataset_dir(path: Path) -> bool:
    return (path / DATA_DIR_NAME).is_dir()


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


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, eq=False)
class EpisodeSlice:
    """The transitions of one episode inside an :class:`OfflineDataset` (views, not copies)."""

    index: int
    observations: FloatArray
    actions: FloatArray
    rewards: FloatArray
    next_observations: FloatArray
    terminations: FloatArray
    truncations: FloatArray

    def __len__(self) -> int:
        return int(len(self.rewards))

    @property
    def final_observation(self) -> FloatArray | None:
        """The observation after the last step (None for an empty episode)."""
        return self.next_observations[-1] if len(self) else None


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """A Minari dataset as flat arrays over all ``N`` transitions, episode after episode.

    ``observations``/``next_observations``: float32 ``(N, *obs_shape)`` (Discrete observations as
    ``(N,)``); ``actions``: float32 ``(N, *act_shape)`` (Discrete actions as ``(N,)`` of whole
    numbers, use ``.astype(np.int64)``); ``rewards``, ``terminations``, ``truncations``: float32
    ``(N,)`` with 0/1 flags; ``episode_ids``: int64 ``(N,)``, the episode of each transition;
    ``episode_offsets``: int64 ``(n_episodes + 1,)``, episode ``i`` is
    ``slice(episode_offsets[i], episode_offsets[i + 1])``. ``next_observations`` never crosses an
    episode boundary: an episode's last row is its own final observation.
    """

    observations: FloatArray
    actions: FloatArray
    rewards: FloatArray
    next_observations: FloatArray
    terminations: FloatArray
    truncations: FloatArray
    episode_ids: IntArray
    episode_offsets: IntArray
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    dataset_id: str | None = None
    data_path: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.rewards)
        for name in ("observations", "actions", "next_observations", "terminations", "truncations"):
            if len(getattr(self, name)) != n:
                raise _error(f"OfflineDataset: {name} has {len(getattr(self, name))} rows, rewards has {n}")
        offsets = self.episode_offsets
        if (
            offsets.ndim != 1
            or len(offsets) < 1
            or offsets[0] != 0
            or offsets[-1] != n
            or np.any(np.diff(offsets) < 0)
        ):
            raise _error("OfflineDataset: episode_offsets must rise from 0 to the number of transitions")
        if len(self.episode_ids) != n:
            raise _error(f"OfflineDataset: episode_ids has {len(self.episode_ids)} rows, rewards has {n}")

    @property
    def n_transitions(self) -> int:
        return int(len(self.rewards))

    @property
    def n_episodes(self) -> int:
        return int(len(self.episode_offsets) - 1)

    @property
    def episode_lengths(self) -> IntArray:
        return np.diff(self.episode_offsets).astype(np.int64)

    @property
    def episode_starts(self) -> npt.NDArray[np.bool_]:
        """``(N,)`` bool, True at the first transition of each episode."""
        starts = np.zeros(self.n_transitions, dtype=bool)
        firsts = self.episode_offsets[:-1][self.episode_lengths > 0]
        starts[firsts] = True
        return starts

    @property
    def dones(self) -> FloatArray:
        """``(N,)`` float32, 1 where the episode ended (terminated or truncated)."""
        return np.maximum(self.terminations, self.truncations)

    def episode(self, index: int) -> EpisodeSlice:
        """Episode ``index`` (negative indices count from the end)."""
        if not -self.n_episodes <= index < self.n_episodes:
            raise IndexError(f"episode {index} out of range for {self.n_episodes} episodes")
        index %= self.n_episodes
        part = slice(int(self.episode_offsets[index]), int(self.episode_offsets[index + 1]))
        return EpisodeSlice(
            index=index,
            observations=self.observations[part],
            actions=self.actions[part],
            rewards=self.rewards[part],
            next_observations=self.next_observations[part],
            terminations=self.terminations[part],
            truncations=self.truncations[part],
        )

    def episodes(self) -> Iterator[EpisodeSlice]:
        for index in range(self.n_episodes):
            yield self.episode(index)

    def episode_returns(self) -> npt.NDArray[np.float64]:
        """Undiscounted return of each episode, ``(n_episodes,)``."""
        weights = self.rewards.astype(np.float64)
        return np.bincount(self.episode_ids, weights=weights, minlength=self.n_episodes).astype(np.float64)

    def mc_returns(self, gamma: float) -> FloatArray:
        """Discounted return-to-go ``G_t = r_t + gamma * G_{t+1}`` of each transition, ``(N,)``.

        Computed within each episode, from the episode's last recorded step (so returns of truncated
        episodes are not bootstrapped beyond the truncation).
        """
        if not 0.0 <= float(gamma) <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {gamma!r}")
        out = np.zeros(self.n_transitions, dtype=np.float64)
        rewards = self.rewards.astype(np.float64)
        for start, end in zip(self.episode_offsets[:-1], self.episode_offsets[1:], strict=True):
            if end > start:
                reversed_rewards = rewards[start:end][::-1]
                out[start:end] = np.asarray(_lfilter()([1.0], [1.0, -float(gamma)], reversed_rewards))[::-1]
        return out.astype(np.float32)


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
                f"(root {root_path}); datasets are never downloaded, create it with write_dataset"
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


def _lfilter() -> Any:
    # scipy.signal costs ~0.5 s and tens of MB at import; only MC returns need it
    from scipy.signal import lfilter

    return lfilter
