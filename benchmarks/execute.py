"""``benchmarks.execute.Executor``, as docs/extending.md documents it for executors of one's own:
the contract lives in :mod:`benchmarks.run.execute`."""

from benchmarks.run.execute import *  # noqa: F403 - re-exported for users' executors
from benchmarks.run.execute import Executor

__all__ = ["Executor"]
