"""Shared by the learning benchmarks: run jobs in a process pool, appending each result as it lands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def run_and_append(
    run_one: Callable[[dict[str, Any]], dict[str, Any]],
    jobs: Iterable[dict[str, Any]],
    workers: int,
    out: Path,
    header: dict[str, Any] | None = None,
) -> None:
    """One JSON line per finished job (flushed, so a killed benchmark keeps what it finished)."""
    with ProcessPoolExecutor(workers) as pool, open(out, "a") as sink:
        if header is not None:
            sink.write(json.dumps(header) + "\n")
        for result in pool.map(run_one, jobs):
            sink.write(json.dumps(result) + "\n")
            sink.flush()
            print(json.dumps(result), flush=True)
