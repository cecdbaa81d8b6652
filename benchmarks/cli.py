"""`python -m benchmarks.cli`, as the docs and users' scripts call it: the command lives in
:mod:`benchmarks.app.cli`."""

import sys

from benchmarks.app.cli import *  # noqa: F403 - re-exported for scripts that import it from here
from benchmarks.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
