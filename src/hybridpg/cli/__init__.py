"""The ``hybridpg`` command line: train, eval, and the subcommands that feature modules add.

A user error (``HybridPGError``) prints one ``error: ...`` line and exits with status 2; nothing
else is printed. Feature modules register subcommands through ``SUBCOMMAND_MODULES``: each module
exposes ``add_parser(subparsers)`` which sets ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hybridpg.cli.evaluate import cmd_eval
from hybridpg.cli.parsing import ArgumentParser, add_config_fields, add_import_option, import_modules, step_count
from hybridpg.cli.run_folders import read_run_config
from hybridpg.cli.train import cmd_train
from hybridpg.errors import HybridPGError

# modules that add subcommands; imported lazily so `hybridpg train` stays quick to start
SUBCOMMAND_MODULES: list[str] = [
    "hybridpg.experiments.sweep",
    "hybridpg.experiments.compare",
    "hybridpg.experiments.demo",
    "hybridpg.cli.collect",
    "hybridpg.experiments.fixed_target",
    "hybridpg.training.export",
]


def build_parser() -> argparse.ArgumentParser:
    from hybridpg import __version__

    parser = ArgumentParser(prog="hybridpg", description="Data-efficient policy-gradient RL.")
    parser.add_argument("--version", action="version", version=f"hybridpg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("train", help="train an agent (hybridpg train --help lists every config field)", add_help=False)
    sub.add_parser("eval", help="evaluate a run folder's saved policy", add_help=False)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    if "sweep" in sub.choices:  # its workers inherit the imports (see import_env_modules)
        add_import_option(sub.choices["sweep"])
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown option is reported by the subcommand it was given to (argparse
    hands a subparser's leftovers to the top-level parser, which would name neither)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = getattr(args, "command", None)
        subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        owner = subparsers.choices.get(command, parser) if subparsers is not None and command else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        if command == "train":
            return cmd_train(argv[1:])
        if command == "eval":
            return cmd_eval(argv[1:])
        parser = build_parser()
        args = _parse(parser, argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if not argv else 2
        import_modules(args)
        return int(args.func(args) or 0)
    except HybridPGError as exc:
        print(f"error: {_name_command(str(exc), command)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or read-only folder met somewhere unforeseen: still one line
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: {_name_command(f'cannot access{where}: {exc.strerror or exc}', command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # a local sweep stopped by SIGTERM raises a KeyboardInterrupt that carries 143
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))


def _name_command(message: str, command: str | None) -> str:
    """Prefix 'hybridpg COMMAND: ' so a log line says which subcommand failed (argparse's own
    messages already carry it)."""
    if command is None or message.startswith("hybridpg"):
        return message
    return f"hybridpg {command}: {message}"

__all__ = ["add_config_fields", "build_parser", "main", "read_run_config", "step_count"]
