"""Fakes for the tests: fault-injecting backends (the NumPy backend until the step where
they fail), a recording backend, a backend from outside the tree, and an in-process
executor. Backends are registered through OPTBENCH_BACKENDS so that workers see them."""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

from backends.base import CompilePath, StackedBatches
from backends.numpy.backend import NumpyBackend
from benchmarks.run.execute import Executor

FAIL_AT = 3


class _Faulty(NumpyBackend):
    def train_step(self, state, x, y):
        if state.step + 1 >= FAIL_AT:
            self.fail()
        return super().train_step(state, x, y)

    def fail(self) -> None:
        raise NotImplementedError


class CrashingBackend(_Faulty):
    name = "crashing"

    def fail(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does


class HangingBackend(_Faulty):
    name = "hanging"

    def fail(self) -> None:
        time.sleep(3600)


class RaisingBackend(_Faulty):
    name = "raising"

    def fail(self) -> None:
        raise RuntimeError("injected failure at step 3")


class RecordingBackend(NumpyBackend):
    """Writes every train_step, sync and host read to $OPTBENCH_TEST_EVENTS, so a test can
    check the timing protocol: no host sync inside a timed block, one at its end."""

    name = "recording"

    def _log(self, event: str) -> None:
        with open(os.environ["OPTBENCH_TEST_EVENTS"], "a") as f:
            f.write(event + "\n")

    def train_step(self, state, x, y):
        self._log("step")
        return super().train_step(state, x, y)

    def sync(self, value) -> None:
        self._log("sync")

    def to_float(self, value) -> float:
        self._log("read")
        return super().to_float(value)

    def evaluate(self, state, x, y):
        self._log("eval")
        return super().evaluate(state, x, y)


class RecordingBlockBackend(RecordingBackend):
    """The recording fake on a block path (as TensorFlow's ``xla_loop`` and JAX's
    ``jit_loop``): a whole block of steps in one call, its losses read back in one go."""

    name = "recording_block"
    #: its registry entry's paths (a test registers it with them)
    PATHS = (
        CompilePath("loop", ("compiled",), "a block of steps per call (fake)", ("cpu",), True),
        CompilePath("eager", ("eager",), "eager", ("cpu",)),
    )

    def split_batches(self, x, y, batch_size):
        n = len(y) // batch_size
        shape = (n, batch_size)
        return StackedBatches(
            x[: n * batch_size].reshape(*shape, -1), y[: n * batch_size].reshape(shape)
        )

    def train_block(self, state, window):
        self._log("block")
        losses = np.zeros(len(window.y))
        for k, (xb, yb) in enumerate(window):
            state, losses[k] = NumpyBackend.train_step(self, state, xb, yb)
        return state, losses

    def host_losses(self, losses):
        self._log("read")
        return super().host_losses(losses)


class GatedBackend(NumpyBackend):
    """The NumPy math, whose runs after the first ``$OPTBENCH_TEST_GATE_AFTER`` wait before
    they start until the file ``$OPTBENCH_TEST_GATE`` exists: a test interrupts a sweep at a
    known point (N runs landed, the next one waiting) instead of racing its runs."""

    name = "gated"

    def init(self, model, opt, weights):
        gate = os.environ.get("OPTBENCH_TEST_GATE")
        if gate:
            with open(gate + ".count", "a") as f:  # one byte per run started
                f.write("x")
            started = os.path.getsize(gate + ".count")
            while started > int(os.environ["OPTBENCH_TEST_GATE_AFTER"]) and not os.path.exists(
                gate
            ):
                time.sleep(0.01)
        return super().init(model, opt, weights)


class MirrorBackend(NumpyBackend):
    """A backend from outside the tree (registered only through OPTBENCH_BACKENDS): what a
    new framework adapter looks like to the harness. It is the NumPy math under another name,
    with a ``stock`` variant that is off the reference (as a framework's defaults are)."""

    name = "mirror"
    variants = ("spec", "stock")

    def train_step(self, state, x, y):
        state, loss = super().train_step(state, x, y)
        if self.variant == "stock":
            state.weights[0] += np.float32(1e-3)
        return state, loss


class SgdOnlyBackend(NumpyBackend):
    """An adapter from outside the tree that maps one optimizer kind."""

    name = "sgdonly"
    kinds = ("sgd",)


class InlineExecutor(Executor):
    """Runs every spec in this process, in order: the executor seam, and fast driver tests
    (NumPy only: a fault-injecting backend would take the test process with it)."""

    def __init__(self):
        self.started: list[str] = []

    def run(self, units, on_start=None):
        from benchmarks.run.runner import execute_run

        for unit in units:
            for spec in unit.specs:
                self.started.append(spec.run_id)
                if on_start is not None:
                    on_start(spec)
                yield spec, execute_run(spec)


# Worker tasks for the worker tests ("module:function" with keyword arguments).
def affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def sleep(seconds: float, started: str = "") -> None:
    """Sleep; with ``started``, first create that file (the test waits for it, not a time)."""
    if started:
        open(started, "w").close()
    time.sleep(seconds)


def exit_with(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    """Crash as a framework's native code does: no Python exception, a message on stderr."""
    import ctypes

    print("native code: about to fail", file=sys.stderr, flush=True)
    ctypes.string_at(0)
