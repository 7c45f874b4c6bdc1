"""What a run was made with: package versions and, from a git checkout, the commit."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = ("hybridpg", "torch", "gymnasium", "mujoco", "numpy")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(folder: Path | None = None) -> str | None:
    """HEAD of the checkout hybridpg is imported from, with '-dirty' for uncommitted changes; None
    when it is not a git checkout (an installed wheel, a venv inside some other repo) or git fails."""
    folder = folder or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    # tracked in the repo that holds it: otherwise the commit would be some unrelated project's
    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{commit}-dirty" if dirty else commit


@functools.cache
def environment_record() -> dict[str, str | None]:
    """Versions of hybridpg and the packages that decide its numbers, Python, and the git commit."""
    record: dict[str, str | None] = {name: package_version(name) for name in PACKAGES}
    record["python"] = platform.python_version()
    record["git_commit"] = git_commit()
    return record
