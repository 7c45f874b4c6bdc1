"""Shared pieces of the dataset modules: constants, one-line errors, spaces, roots and ids."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces
from minari.dataset.minari_dataset import parse_dataset_id

from hybridpg.errors import DatasetError

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


def _is_minari_dataset_dir(path: Path) -> bool:
    return (path / DATA_DIR_NAME).is_dir()
