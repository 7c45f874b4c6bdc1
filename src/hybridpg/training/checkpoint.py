"""Checkpoint files: atomic, versioned, checksummed, and loaded without executing code.

Layout: an 8-byte magic, a 4-byte format version, the 32-byte SHA-256 of the payload, then the
payload, which is ``torch.save`` of plain containers and tensors. Loading verifies the checksum
and then uses ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch

from hybridpg.errors import CheckpointError

MAGIC = b"HYBRIDPG"
FORMAT_VERSION = 1
_HEADER = len(MAGIC) + 4 + 32


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a run's files follow the user's umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def current_umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no /proc: set and restore (a brief window other threads could see)
    os.umask(old)
    return old


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(_own_memory(state), buffer)
    payload = buffer.getvalue()
    header = MAGIC + struct.pack("<I", FORMAT_VERSION) + hashlib.sha256(payload).digest()
    try:
        atomic_write_bytes(Path(path), header + payload)
    except OSError as exc:  # full disk, read-only folder: the previous checkpoint is still intact
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def _own_memory(value: Any) -> Any:
    """``value`` with every tensor that views a larger block (a seed's row of stacked networks) copied
    out: ``torch.save`` writes a view's whole underlying memory, which would put every seed in each file."""
    if isinstance(value, torch.Tensor):
        return value.clone() if value.untyped_storage().nbytes() > value.numel() * value.element_size() else value
    if isinstance(value, dict):
        return {k: _own_memory(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(_own_memory(v) for v in value)
    return value


def load_checkpoint(path: str | Path, expect_algo: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "final.pt" if (path / "checkpoints" / "final.pt").exists() else (
            path / "checkpoints" / "latest.pt"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path} is not a hybridpg checkpoint (bad header or truncated)")
    (version,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this hybridpg's {FORMAT_VERSION}; "
            "upgrade hybridpg"
        )
    digest, payload = data[len(MAGIC) + 4 : _HEADER], data[_HEADER:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is corrupt: checksum mismatch (truncated or modified file)")
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:  # the unpickler refuses anything but tensors and plain containers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} was refused by the safe loader: {first}") from None
    if not isinstance(state, dict) or "algo" not in state:
        raise CheckpointError(f"{path} does not hold a hybridpg agent state")
    if expect_algo is not None and state["algo"] != expect_algo:
        raise CheckpointError(f"{path} is a '{state['algo']}' checkpoint, not '{expect_algo}'")
    return state
