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

from hybridpg.data.datasets.common import DATA_DIR_NAME, HDF5_FILE_NAME, METADATA_FILE_NAME, default_root
from hybridpg.data.datasets.episodes import EpisodeRecord, collect_episodes
from hybridpg.data.datasets.offline import EpisodeSlice, OfflineDataset
from hybridpg.data.datasets.reading import check_compatible, load_dataset
from hybridpg.data.datasets.writing import write_dataset

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
