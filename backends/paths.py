"""The ways a backend runs its step (eager, and each compiler): :class:`CompilePath`, and
how a run picks one. Framework-free, so that the registry declares a backend's paths
without importing it."""

from __future__ import annotations

from dataclasses import dataclass, fields

from backends.errors import check as _check


@dataclass(frozen=True)
class CompilePath:
    """One way a backend runs its training step: eager, or one of its compilers. Its name
    is what ``--compiler`` takes and the ``compiler`` column holds."""

    name: str
    modes: tuple[str, ...]  # the mode(s) it serves
    detail: str  # what it is, in the framework's words (the ``compiler_detail`` column)
    devices: tuple[str, ...] = ("cpu", "gpu")
    # What the path does, asked by the adapters (``self.path.xla``) and by optimizer plugins
    # that cannot run on some paths; never inferred from the name.
    #: one call runs a whole block of steps (``Backend.train_steps`` over
    #: :class:`StackedBatches`, a loop on the device) rather than one step per call
    block: bool = False
    #: the step is traced into a graph before it runs (``tf.function``, ``jax.jit``,
    #: ``torch.compile``)
    traced: bool = False
    #: the traced step is compiled by XLA (``jit_compile=True``, ``jax.jit``)
    xla: bool = False
    #: the whole step is captured once in a CUDA graph and replayed
    cuda_graph: bool = False

    def options(self) -> tuple[str, ...]:
        """The names of the options this path has, e.g. ``("block", "traced", "xla")``."""
        return tuple(o for o in PATH_OPTIONS if getattr(self, o))


#: the options a path may have: the boolean fields of :class:`CompilePath` (a new option is
#: one field there, with its comment)
PATH_OPTIONS = tuple(f.name for f in fields(CompilePath) if f.type in (bool, "bool"))

#: the paths of a backend that declares none: one per mode, named after it
MODE_PATHS = (
    CompilePath("eager", ("eager",), "eager"),
    CompilePath("compiled", ("compiled",), "compiled"),
)


def candidate_paths(paths: tuple[CompilePath, ...], mode: str, device: str) -> list[CompilePath]:
    """The paths that serve ``mode`` on ``device``, in the backend's order of preference
    (the first is the default where nothing was measured)."""
    return [p for p in paths if mode in p.modes and device in p.devices]


def choose_path(
    backend: str, paths: tuple[CompilePath, ...], mode: str, device: str, compiler: str | None
) -> CompilePath:
    """The path a run takes: ``compiler`` by name, or the default for (mode, device);
    a clear error naming what is supported otherwise."""
    here = candidate_paths(paths, mode, device)
    if compiler is None:
        _check(bool(here), "mode", mode, f"{backend} has no {mode} path on the {device}")
        return here[0]
    by_name = {p.name: p for p in paths}
    _check(
        compiler in by_name,
        "compiler",
        compiler,
        f"{backend} has {', '.join(by_name)} (see `optbench backends`)",
    )
    path = by_name[compiler]
    _check(
        path in here,
        "compiler",
        compiler,
        f"{backend}'s {compiler} runs in {'/'.join(path.modes)} mode on "
        f"{'/'.join(path.devices)}; for {mode} on the {device} it has "
        f"{', '.join(p.name for p in here) or 'nothing'}",
    )
    return path
