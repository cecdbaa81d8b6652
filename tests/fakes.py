"""Fault-injecting backends for the runner's tests: they are the NumPy backend until the
step where they fail. Registered through OPTBENCH_BACKENDS so that workers see them."""

from __future__ import annotations

import os
import signal
import time

from backends.numpy.backend import NumpyBackend

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
