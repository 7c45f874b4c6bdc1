"""Argument parsing shared by every subcommand: one-line errors, step counts like 1e5, config fields."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import typing
from collections.abc import Sequence
from typing import Any

from hybridpg.errors import HybridPGError


def step_count(text: str) -> int:
    """An env-step count as users write it: 100000, 100_000 or 1e5 (whole numbers only)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of steps (e.g. 100000 or 1e5)")
    return int(value)


def _is_step_option(option_strings: Sequence[str]) -> bool:
    return any(o.startswith("--") and (o.endswith("timesteps") or o.endswith("-steps")) for o in option_strings)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one error line instead of usage + error.

    Subcommand parsers made with ``add_subparsers`` are this class too, so every subcommand
    gets step counts written as 1e5 and "did you mean" hints for mistyped options.
    """

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        # every integer step-count option takes 1e5 (rl-zoo habit), whichever module adds it
        if kwargs.get("type") is int and _is_step_option(args):
            kwargs["type"] = step_count
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("unrecognized arguments:"):
            message += self.suggestion(message.split(":", 1)[1].split())
        raise HybridPGError(f"{self.prog}: {message}")

    def suggestion(self, unknown: Sequence[str]) -> str:
        """'; did you mean --X?' for the first mistyped option that resembles one of ours."""
        options = [o for o in self._option_string_actions if o.startswith("--")]
        for arg in unknown:
            if arg.startswith("-"):
                close = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""


def algorithms() -> dict[str, Any]:
    from hybridpg.algorithms import ALGORITHMS

    return ALGORITHMS


def add_config_fields(parser: argparse.ArgumentParser, config_cls: type) -> None:
    group = parser.add_argument_group(f"{config_cls.algo} config fields")  # type: ignore[attr-defined]
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        default: Any = f.default
        if default is dataclasses.MISSING and callable(f.default_factory):
            default = f.default_factory()
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        described = f.metadata.get("help")
        text = f"{described} (default: {shown})" if described else f"(default: {shown})"
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"cfg_{f.name}",
            default=None,
            metavar=kind.upper(),
            help=text.replace("%", "%%"),  # argparse %-formats help; a literal % in a description must survive
        )


def add_import_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import a module that registers your envs (gymnasium.register) first; repeatable. "
             "Or name the env as MODULE:EnvId-v0",
    )


def import_modules(args: argparse.Namespace) -> None:
    from hybridpg.envs.registry import import_env_modules

    import_env_modules(getattr(args, "imports", None) or [], export=True)
