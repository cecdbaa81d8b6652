"""`python -m benchmarks.gpu_check`, as the docs and users' scripts call it: the command lives in
:mod:`benchmarks.checks.gpu_check`."""

import sys

from benchmarks.checks.gpu_check import *  # noqa: F403 - re-exported for scripts that import it from here
from benchmarks.checks.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
