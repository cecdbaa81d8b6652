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
