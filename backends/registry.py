"""Backends by name, loaded lazily: asking what is installed imports no framework."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.paths import MODE_PATHS, CompilePath
from backends.spec import KINDS, SpecError

if TYPE_CHECKING:  # the base class imports the registry (its paths are declared here)
    from backends.base import Backend


@dataclass(frozen=True)
class Entry:
    """Everything the harness knows about a backend without importing it."""

    name: str
    target: str  # "module:Class"
    requires: tuple[str, ...]  # top-level modules that must be importable
    extra: str  # pip extra that installs them
    packages: tuple[str, ...] = ()  # distributions whose versions environment.json records
    worker_env: tuple[tuple[str, str], ...] = ()  # set in every worker; "{threads}" filled in
    color: str = ""  # its colour in every figure ("" = a stable colour from a palette)
    marker: str = "o"  # its marker in every figure
    #: the ways it runs a step, in order of preference per mode and device (the first is
    #: the default where nothing was measured; see docs/methodology.md, "Compiled paths")
    paths: tuple[CompilePath, ...] = MODE_PATHS
    #: the optimizer variants it runs (``backends.base.VARIANTS``) and the kinds it maps, as
    #: its class says (a contract test holds the built-in ones to it); None: not declared
    #: here, asked of the class (an adapter from outside the tree, see :func:`capabilities`)
    variants: tuple[str, ...] | None = ("spec",)
    kinds: tuple[str, ...] | None = tuple(KINDS)
    #: the dtypes it runs in, and "module:function" of its bare loop (the overhead
    #: benchmark's; "" for none)
    dtypes: tuple[str, ...] = ("float32",)
    bare: str = ""

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def install_hint(self) -> str:
        if self.extra:
            return f"pip install -e '.[{self.extra}]'"
        return f"install the package that provides {', '.join(self.requires)}"


REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry(
            "numpy",
            "backends.numpy.backend:NumpyBackend",
            ("numpy",),
            "",
            packages=("numpy",),
            color="#1f77b4",
            dtypes=("float32", "float64"),
            bare="backends.numpy.bare:bare_loops",
            paths=(
                CompilePath(
                    "numpy",
                    ("eager", "compiled"),
                    "no compiler: the same NumPy code in both modes",
                    devices=("cpu",),
                ),
            ),
        ),
        Entry(
            "torch",
            "backends.torch.backend:TorchBackend",
            ("torch",),
            "torch",
            packages=("torch",),
            color="#d62728",
            marker="s",
            variants=("spec", "stock"),
            dtypes=("float32", "float64"),
            bare="backends.torch.bare:bare_loops",
            paths=(
                CompilePath("eager", ("eager",), "eager, fused torch.optim kernel"),
                # on a GPU the whole step replayed from one CUDA graph removes the launch
                # latency that dominates small steps (measured 7x faster at 784-64-10)
                CompilePath(
                    "cudagraph",
                    ("compiled",),
                    "whole step (forward, backward, capturable fused optimizer) captured "
                    "once with torch.cuda.graph on static batch buffers, then replayed",
                    devices=("gpu",),
                    cuda_graph=True,
                ),
                CompilePath(
                    "inductor",
                    ("compiled",),
                    "torch.compile(inductor, static shapes) of forward+loss, AOTAutograd "
                    "backward, fused torch.optim kernel",
                    traced=True,
                ),
            ),
        ),
        Entry(
            "tensorflow",
            "backends.tensorflow.backend:TensorflowBackend",
            ("tensorflow", "keras"),
            "tensorflow",
            packages=("tensorflow", "tensorflow-cpu", "keras"),
            # TensorFlow reads its pool sizes from the environment, before it starts
            worker_env=(
                ("TF_NUM_INTRAOP_THREADS", "{threads}"),
                ("TF_NUM_INTEROP_THREADS", "1"),
                ("TF_CPP_MIN_LOG_LEVEL", "2"),
                ("KERAS_BACKEND", "tensorflow"),
            ),
            color="#ff7f0e",
            marker="^",
            variants=("spec", "stock"),
            bare="backends.tensorflow.bare:bare_loops",
            # float32 only (the default): Keras keeps the learning rate in a float32 (floatx)
            # variable and casts Python hyperparameters through float32, so a float64 run
            # would not be float64 math
            paths=(
                CompilePath("eager", ("eager",), "TensorFlow eager, Keras optimizer"),
                # XLA or not is decided by measurement where the sweep runs (machine-dependent)
                CompilePath(
                    "xla",
                    ("compiled",),
                    "tf.function(jit_compile=True): XLA",
                    traced=True,
                    xla=True,
                ),
                CompilePath(
                    "tf_function",
                    ("compiled",),
                    "tf.function(jit_compile=False): graph",
                    traced=True,
                ),
                # a block of steps per call, as Keras' steps_per_execution: a tf.function
                # call costs about as much as the step at 784-64-10 on a 2-core CPU: the
                # loop measured 1.6-1.9x faster there (SGD+momentum and Adam, batch 128)
                CompilePath(
                    "xla_loop",
                    ("compiled",),
                    "tf.function(jit_compile=True) of a block of steps: a while loop of "
                    "the step over the epoch's batches stacked on the device",
                    block=True,
                    traced=True,
                    xla=True,
                ),
                CompilePath(
                    "tf_function_loop",
                    ("compiled",),
                    "tf.function(jit_compile=False) of a block of steps: a while loop of "
                    "the step over the epoch's batches stacked on the device",
                    block=True,
                    traced=True,
                ),
            ),
        ),
        Entry(
            "jax",
            "backends.jax.backend:JaxBackend",
            ("jax", "optax"),
            "jax",
            packages=("jax", "jaxlib", "optax"),
            color="#2ca02c",
            marker="D",
            variants=("spec", "stock"),
            bare="backends.jax.bare:bare_loops",
            paths=(
                CompilePath("eager", ("eager",), "op by op, no jax.jit"),
                CompilePath(
                    "jit",
                    ("compiled",),
                    "jax.jit(XLA) of the whole step, parameter and optimizer buffers donated",
                    traced=True,
                    xla=True,
                ),
                # no Python between steps: measured 8-9% faster than jit on a 2-core CPU
                CompilePath(
                    "jit_loop",
                    ("compiled",),
                    "jax.jit(XLA) of a block of steps: lax.fori_loop of the step over the "
                    "epoch's batches stacked on the device, buffers donated",
                    block=True,
                    traced=True,
                    xla=True,
                ),
            ),
        ),
    )
}


def parse_extra(text: str) -> list[Entry]:
    """Entries from ``"name=module:Class,other=module:Class"`` (OPTBENCH_BACKENDS)."""
    out = []
    for item in filter(None, text.split(",")):
        name, _, target = item.partition("=")
        target = target.strip()
        module = target.split(".")[0].split(":")[0]
        out.append(Entry(name.strip(), target, (module,), "", variants=None, kinds=None))
    return out


# Extra backends, e.g. a third-party adapter or the tests' fault-injecting ones. An
# environment variable, so that worker processes see the same registry as the driver.
REGISTRY.update((e.name, e) for e in parse_extra(os.environ.get("OPTBENCH_BACKENDS", "")))

NAMES = tuple(REGISTRY)


class BackendNotInstalled(RuntimeError):
    pass


def entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise SpecError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")
    return REGISTRY[name]


def is_installed(name: str) -> bool:
    return not entry(name).missing()


def installed() -> list[str]:
    return [n for n in NAMES if is_installed(n)]


def require(name: str) -> Entry:
    """The entry of an installed backend; raises BackendNotInstalled with the install
    command if its framework is missing (nothing is imported)."""
    e = entry(name)
    missing = e.missing()
    if missing:
        raise BackendNotInstalled(
            f"backend {name!r} is not installed (missing {', '.join(missing)}); "
            f"fix: {e.install_hint()}"
        )
    return e


def load(name: str) -> type[Backend]:
    """The backend class; raises BackendNotInstalled with the install command if missing."""
    module, cls = require(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def capabilities(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The optimizer kinds and variants a backend runs, without importing a built-in
    framework (its entry declares them); an adapter registered from outside the tree
    (OPTBENCH_BACKENDS) is imported and asked, so that a sweep it cannot run fails before
    anything runs."""
    e = entry(name)
    if e.kinds is not None and e.variants is not None:
        return e.kinds, e.variants
    cls = load(name)
    return tuple(cls.kinds), tuple(cls.variants)


def create(
    name: str,
    mode: str = "compiled",
    device: str = "cpu",
    dtype: str = "float32",
    compiler: str | None = None,
) -> Backend:
    return load(name)(mode=mode, device=device, dtype=dtype, compiler=compiler)
