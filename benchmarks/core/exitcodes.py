"""The exit codes of every ``optbench`` command (docs/reference.md's table is this one)."""

from __future__ import annotations

#: everything asked for was done, and nothing measured failed
OK = 0
#: a measured failure: failed runs, parity outside the tolerance, a regression found
MEASURED_FAILURE = 1
#: bad input, or an environment that cannot serve the request (an unknown name, an explicit
#: GPU request where no GPU is visible, an unusable results folder)
BAD_INPUT = 2
#: interrupted (Ctrl-C); finished runs are kept and ``--resume`` continues
INTERRUPTED = 130

TABLE = {
    OK: "ok",
    MEASURED_FAILURE: "a measured failure: failed runs, parity outside the tolerance, a regression",
    BAD_INPUT: "bad input, or an environment that cannot serve the request",
    INTERRUPTED: "interrupted (Ctrl-C); finished runs are kept, --resume continues",
}
