"""Shared by the learning benchmarks: run jobs in a process pool, appending each result as it lands;
the command line of the checks that retrain the PROPS RL comparison's seeds another way."""

from __future__ import annotations

import argparse
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


def learning_check_main(doc: str, run: Callable[[str, str, list[int]], None],
                        report: Callable[[str, str], None]) -> None:
    """``run [--env E] [--algo A] [--seeds S]`` or ``report [--env E] [--algo A]``."""
    from hybridpg.experiments.spec_file import parse_seeds

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--algo", default="props")
    parser.add_argument("--seeds", default="0-9")
    args = parser.parse_args()
    if args.command == "run":
        run(args.env, args.algo, parse_seeds(args.seeds))
    else:
        report(args.env, args.algo)
