"""`python -m benchmarks.overhead`, as the docs and users' scripts call it: the command lives in
:mod:`benchmarks.checks.overhead`."""

import sys

from benchmarks.checks.overhead import *  # noqa: F403 - re-exported for scripts that import it from here
from benchmarks.checks.overhead import main

if __name__ == "__main__":
    sys.exit(main())
