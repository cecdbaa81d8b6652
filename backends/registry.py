"""Backends by name, loaded lazily: asking what is installed imports no framework."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

from backends.base import Backend, SpecError


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:Class"
    requires: tuple[str, ...]  # top-level modules that must be importable
    extra: str  # pip extra that installs them

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def install_hint(self) -> str:
        if self.extra:
            return f"pip install -e '.[{self.extra}]'"
        return f"install the package that provides {', '.join(self.requires)}"


REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry("numpy", "backends.numpy.backend:NumpyBackend", ("numpy",), ""),
        Entry("torch", "backends.torch.backend:TorchBackend", ("torch",), "torch"),
        Entry(
            "tensorflow",
            "backends.tensorflow.backend:TensorflowBackend",
            ("tensorflow", "keras"),
            "tensorflow",
        ),
        Entry("jax", "backends.jax.backend:JaxBackend", ("jax", "optax"), "jax"),
    )
}

# Extra backends, e.g. a third-party adapter or the tests' fault-injecting ones:
# OPTBENCH_BACKENDS="name=module:Class,other=module:Class". An environment variable, so
# that worker processes see the same registry as the driver.
for _item in filter(None, os.environ.get("OPTBENCH_BACKENDS", "").split(",")):
    _name, _, _target = _item.partition("=")
    _target = _target.strip()
    REGISTRY[_name.strip()] = Entry(
        _name.strip(), _target, (_target.split(".")[0].split(":")[0],), ""
    )

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


def load(name: str) -> type[Backend]:
    """The backend class; raises BackendNotInstalled with the install command if missing."""
    e = entry(name)
    missing = e.missing()
    if missing:
        raise BackendNotInstalled(
            f"backend {name!r} is not installed (missing {', '.join(missing)}); "
            f"fix: {e.install_hint()}"
        )
    module, cls = e.target.split(":")
    return getattr(importlib.import_module(module), cls)


def create(
    name: str, mode: str = "compiled", device: str = "cpu", dtype: str = "float32"
) -> Backend:
    return load(name)(mode=mode, device=device, dtype=dtype)
