"""The contract between the harness and every framework adapter, and the shared spec.

This file imports NumPy only. Everything a backend needs to know about a run is here:
the shared spec (:mod:`backends.spec`: the model, the optimizer with every hyperparameter
explicit, the initial weights), the ways a step runs (:mod:`backends.paths`), and the
adapter interface (:class:`Backend`), re-exported here as adapters import them. The NumPy backend implements the same math as the
reference that every other backend is checked against.

Weights travel between backends as a list of NumPy arrays ``[W0, b0, W1, b1, ...]`` with
``W`` of shape ``(in, out)`` (the Keras/JAX layout; torch stores ``(out, in)`` and
transposes at its boundary).
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from backends import registry
from backends.paths import *  # noqa: F403 - the contract's names, as adapters import them
from backends.paths import MODE_PATHS, CompilePath, choose_path
from backends.spec import *  # noqa: F403
from backends.spec import MODES, ModelSpec, OptimizerSpec, Weights, _check


@dataclass
class BackendInfo:
    """What a backend says about itself (``Backend.describe``)."""

    name: str
    framework: str
    version: str
    device: str
    mode: str
    dtype: str
    compiler: str  # the path's name (``CompilePath.name``)
    compiler_detail: str = ""  # the path's ``detail``
    extra: dict[str, Any] = field(default_factory=dict)


class StackedBatches(Sequence):
    """Full batches stacked on the device, ``x`` of shape ``(batches, batch_size, ...)``
    and ``y`` of ``(batches, batch_size)``, and the window ``[start, stop)`` of them that a
    block trains on: what :meth:`Backend.split_batches` gives on a path whose
    :meth:`Backend.train_steps` runs the block as one compiled loop over ``x[start:stop]``.
    Slicing gives a window on the same arrays (no copy, no device work); an item is one
    batch ``(x[i], y[i])``, as from a list of batches."""

    def __init__(self, x: Any, y: Any, start: int = 0, stop: int | None = None):
        self.x, self.y = x, y
        self.start = start
        self.stop = int(y.shape[0]) if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            start, stop, stride = index.indices(len(self))
            if stride != 1:
                raise ValueError(f"a window of batches is contiguous (step 1), not step {stride}")
            return StackedBatches(self.x, self.y, self.start + start, self.start + max(start, stop))
        i = range(self.start, self.stop)[index]  # IndexError past the window
        return self.x[i], self.y[i]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return (self[i] for i in range(len(self)))


class BlockLosses(NamedTuple):
    """The losses of a block run as one compiled call: the first ``count`` entries of
    ``values``, a device array as long as the stacked batches (a fixed shape, so that blocks
    of every length share one compiled program)."""

    values: Any
    count: int


class Backend(abc.ABC):
    """One framework's implementation of the MLP and its optimizers.

    The life of a run::

        be = TorchBackend(mode="compiled", device="cpu")  # compiler=None: the default path
        state = be.init(model, opt, init_weights(model, seed=0))
        xb, yb = be.to_device(x_batch, y_batch)       # stage data before timing
        state, loss = be.train_step(state, xb, yb)    # loss stays on the device
        be.sync(loss)                                 # wait for the device
        be.to_float(loss), be.evaluate(state, xt, yt), be.get_weights(state)

    The runner drives blocks of steps: ``batches = be.split_batches(xs, ys, batch_size)``
    once per epoch, then ``state, losses = be.train_steps(state, batches[i : i + n])``,
    ``be.sync_losses(losses)`` and ``be.host_losses(losses)``. ``train_steps`` loops over
    ``train_step`` unless a path runs the whole block in one compiled call (a loop on the
    device over :class:`StackedBatches`, as Keras' ``steps_per_execution`` does).

    ``train_step`` and ``train_steps`` must not synchronise with the host: the harness
    decides when to wait, so a block of steps can be timed with one sync at its end. The
    losses they return must stay valid after later steps (the runner reads a whole block's
    losses after the block): a path that replays into static buffers (CUDA graphs) returns
    a copy. State is opaque to the harness; adapters that hold mutable framework objects
    keep them inside it.

    The ways a backend runs its step (eager, and each compiler) are its :class:`CompilePath`
    entries in ``backends.registry`` (so that the driver knows them without importing the
    framework); ``self.path`` is the one this instance runs.
    """

    #: registry name, e.g. "torch"
    name: ClassVar[str]
    #: the ``pip install`` extra that brings the framework
    extra: ClassVar[str]
    #: modes this backend runs in
    modes: ClassVar[tuple[str, ...]] = MODES
    #: dtypes this backend runs in
    dtypes: ClassVar[tuple[str, ...]] = ("float32",)
    #: optimizer kinds this backend maps (the keys of its kind -> implementation table);
    #: a test fails until it equals ``KINDS``
    kinds: ClassVar[tuple[str, ...]] = ()
    #: the variants (:data:`VARIANTS`) it runs: "spec" always; "stock" where the framework
    #: has optimizers of its own (the NumPy reference has none: it is the spec)
    variants: ClassVar[tuple[str, ...]] = ("spec",)
    #: "module:function" of this framework's bare loop (see :meth:`bare_loop`); imported only
    #: by the overhead benchmark
    bare: ClassVar[str] = ""

    def __init_subclass__(cls, **kw):
        """A built-in adapter reads what it is from its registry entry (declared there once,
        framework-free: its extra, variants, dtypes, bare loop); an adapter from outside the
        tree (OPTBENCH_BACKENDS, an entry that declares no variants) keeps its own."""
        super().__init_subclass__(**kw)
        entry = registry.REGISTRY.get(cls.__dict__.get("name", ""))
        if entry is None or entry.variants is None:
            return
        if entry.target != f"{cls.__module__}:{cls.__qualname__}":
            return
        cls.extra, cls.variants, cls.dtypes, cls.bare = (
            entry.extra,
            entry.variants,
            entry.dtypes,
            entry.bare,
        )

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
        variant: str = "spec",
    ):
        _check(mode in self.modes, "mode", mode, f"{self.name} runs in {', '.join(self.modes)}")
        _check(
            variant in self.variants,
            "variant",
            variant,
            f"{self.name} runs {', '.join(self.variants)}"
            + ("" if "stock" in self.variants else " (it has no stock optimizers of its own)"),
        )
        _check(
            dtype in self.dtypes, "dtype", dtype, f"{self.name} runs in {', '.join(self.dtypes)}"
        )
        devices = self.devices()
        _check(
            device in devices,
            "device",
            device,
            f"{self.name} has {', '.join(devices)} here",
        )
        self.mode = mode
        self.device = device
        self.dtype = dtype
        self.variant = variant
        self.path = choose_path(self.name, self.compile_paths(), mode, device, compiler)

    @classmethod
    def compile_paths(cls) -> tuple[CompilePath, ...]:
        """This backend's paths (its registry entry's; :data:`MODE_PATHS` if it has none)."""
        entry = registry.REGISTRY.get(cls.name)
        return entry.paths if entry is not None else MODE_PATHS

    @classmethod
    @abc.abstractmethod
    def devices(cls) -> list[str]:
        """Device kinds available to this framework here: ``cpu`` and, where present, ``gpu``."""

    @abc.abstractmethod
    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> Any:
        """Create the training state (parameters + optimizer slots) from NumPy weights."""

    @abc.abstractmethod
    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """Stage features (float) and integer labels on the device."""

    def split_batches(self, x: Any, y: Any, batch_size: int) -> Sequence[tuple[Any, Any]]:
        """Cut staged data into consecutive full batches (the remainder is dropped so that
        every step has the same shape and compiled steps never recompile): a list of
        ``(x, y)`` batches, or on a block path :class:`StackedBatches`."""
        n = (len(y) // batch_size) * batch_size
        return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]

    @abc.abstractmethod
    def train_step(self, state: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """One optimizer step on a staged batch; returns ``(state, loss)``, loss on device."""

    def train_steps(self, state: Any, batches: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
        """Consecutive steps, one per batch of ``batches`` (what :meth:`split_batches`
        returned, or a slice of it), with no host sync; returns ``(state, losses)``: every
        step's loss on the device, for :meth:`sync_losses` and :meth:`host_losses`. On a
        block path (``self.path.block``) a window of :class:`StackedBatches` is one call
        of :meth:`train_block`; anything else loops over :meth:`train_step`."""
        if self.path.block and isinstance(batches, StackedBatches) and len(batches):
            state, values = self.train_block(state, batches)
            return state, BlockLosses(values, len(batches))
        losses = []
        for xb, yb in batches:
            state, loss = self.train_step(state, xb, yb)
            losses.append(loss)
        return state, losses

    def train_block(self, state: Any, window: StackedBatches) -> tuple[Any, Any]:
        """A block path's steps on ``window`` in one compiled call: ``(state, values)``,
        values a device array as long as ``window.x`` whose first ``len(window)`` entries
        are the steps' losses (a fixed shape: one compilation for windows of every length)."""
        raise NotImplementedError(f"{self.name}'s {self.path.name} path runs no block")

    def sync_losses(self, losses: Any) -> None:
        """Wait for the block that produced ``losses`` (:meth:`train_steps`): its last loss."""
        if isinstance(losses, BlockLosses):
            self.sync(losses.values)
        elif len(losses):
            self.sync(losses[-1])

    def host_losses(self, losses: Any) -> np.ndarray:
        """A block's losses (:meth:`train_steps`) as float64 NumPy, one per step."""
        if isinstance(losses, BlockLosses):
            return np.asarray(losses.values, dtype=np.float64)[: losses.count]
        return np.array([self.to_float(v) for v in losses], dtype=np.float64)

    @abc.abstractmethod
    def evaluate(self, state: Any, x: Any, y: Any) -> tuple[float, float]:
        """Mean cross-entropy loss and accuracy on staged data, as Python floats."""

    @abc.abstractmethod
    def get_weights(self, state: Any) -> Weights:
        """Current weights as NumPy arrays in the shared ``[W0, b0, ...]`` layout."""

    @abc.abstractmethod
    def sync(self, value: Any) -> None:
        """Block until the device has finished the work that produced ``value``."""

    def to_float(self, value: Any) -> float:
        """A device scalar as a Python float (synchronises)."""
        return float(np.asarray(value))

    @abc.abstractmethod
    def describe(self) -> BackendInfo:
        """Framework name and version, device, mode, dtype and compiler (``self.path``):
        ``self.info(framework, version, **extra)``."""

    def info(self, framework: str, version: str, **extra: Any) -> BackendInfo:
        """This run's :class:`BackendInfo`: what every backend records of itself, plus the
        framework's own ``extra`` (threads, precision, library versions)."""
        return BackendInfo(
            name=self.name,
            framework=framework,
            version=version,
            device=self.device,
            mode=self.mode,
            dtype=self.dtype,
            compiler=self.path.name,
            compiler_detail=self.path.detail,
            extra=extra,
        )

    #: what ``peak_memory_mb`` measures (the ``peak_memory_kind`` column): "device", this
    #: run's peak (reset at ``init``), or "device_process_peak", the worker's high-water mark
    #: where the framework cannot reset it
    device_peak_kind: ClassVar[str] = "device"

    def peak_memory_mb(self) -> float | None:
        """Peak device memory in MiB (see ``device_peak_kind``), where the framework tracks
        it (GPU); None on the CPU, where the harness samples the process's resident memory."""
        return None

    @classmethod
    def bare_loops(
        cls,
        opt: OptimizerSpec,
        weights: Weights,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        device: str = "cpu",
    ) -> dict[str, Any]:
        """For the overhead benchmark: ``{name: block}`` with ``block(steps) -> seconds``,
        each a training loop written directly in the framework as a competent user would
        (nothing of the suite's), doing the same step on ``device``: every idiomatic loop
        that could be this framework's fastest there (eager with a fused optimizer, each
        compiler). Each backend keeps them in its ``bare.py`` and names the function in
        :attr:`bare`."""
        if not cls.bare:
            raise NotImplementedError(f"{cls.name} has no bare loop to compare against")
        module, func = cls.bare.split(":")
        loops = getattr(importlib.import_module(module), func)
        return loops(opt, weights, x, y, batch_size, device)


# ---------------------------------------------------------------------------------------
# The reference math, in NumPy, shared by the NumPy backend and the tests.
# ---------------------------------------------------------------------------------------


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy on logits and its gradient with respect to the logits.

    Computed from logits with log-sum-exp, never as softmax followed by a log of clipped
    probabilities: clipping (Keras' ``from_logits=False`` path clips to [1e-7, 1-1e-7])
    changes the loss value and zeroes the gradient of confident mistakes, and each
    framework clips differently, so the backends would not agree.
    """
    if labels.ndim != 1 or len(labels) != len(logits):
        raise ValueError(f"labels must have shape ({len(logits)},), not {labels.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    n = logits.shape[0]
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


def forward(weights: Weights, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the activations of every layer input (for backprop)."""
    acts = [x]
    h = x
    n_layers = len(weights) // 2
    for i in range(n_layers):
        h = h @ weights[2 * i] + weights[2 * i + 1]
        if i < n_layers - 1:
            h = np.maximum(h, 0)
            acts.append(h)
    return h, acts


def loss_and_grads(weights: Weights, x: np.ndarray, y: np.ndarray) -> tuple[float, Weights]:
    """Mean cross-entropy and its gradient for every weight, by hand-written backprop."""
    logits, acts = forward(weights, x)
    loss, d = softmax_cross_entropy(logits, y)
    d = d.astype(weights[0].dtype, copy=False)
    grads: Weights = [np.empty(0)] * len(weights)
    for i in reversed(range(len(weights) // 2)):
        grads[2 * i] = acts[i].T @ d
        grads[2 * i + 1] = d.sum(axis=0)
        if i > 0:
            d = (d @ weights[2 * i].T) * (acts[i] > 0)
    return loss, grads
