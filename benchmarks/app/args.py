"""What every ``optbench`` command's parser shares: the one-line error, options built only
when their command is parsed, the comma-separated value types, and UsageError."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmarks.core import exitcodes


class UsageError(ValueError):
    """Bad command-line input; reported without a traceback."""


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option said in one line (as every other bad input is), not
    after the whole usage block; ``--help`` still shows it all.

    ``options(parser)`` adds a command's options the first time the command is parsed or
    its help shown: they read their defaults from what they configure (``ParityConfig``,
    ``compare()``, the sweep settings), and importing those for every command would make
    ``optbench --help`` several times slower (``benchmarks.track.compare`` alone: 0.8 s).
    """

    def __init__(
        self, *args, options: Callable[[argparse.ArgumentParser], None] | None = None, **kw
    ):
        super().__init__(*args, **kw)
        self._options = options

    def _add_options(self) -> None:
        options, self._options = self._options, None
        if options is not None:
            options(self)

    def parse_known_args(self, args=None, namespace=None):
        self._add_options()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._add_options()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_options()
        return super().format_help()

    def error(self, message: str):
        self.exit(exitcodes.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def floats(value: str) -> list[float]:
    try:
        return [float(v) for v in csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected comma-separated numbers, e.g. 1e-3,1e-2"
        ) from None


def ints(value: str) -> list[int]:
    try:
        return [int(v) for v in csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected comma-separated integers, e.g. 32,128"
        ) from None


def number(x: float) -> str:
    """A default as help writes it: 0.05, 2e-6."""
    return f"{x:g}".replace("e-0", "e-").replace("e+0", "e+")
