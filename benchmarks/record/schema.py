"""The run record: its vocabulary, its columns, the spec of one run, and how it evolves.

Every module that writes or reads a results folder takes its words from here: the run
statuses (:class:`Status` and the sets built from it), the columns of ``runs``, ``curves``
and ``timings``, :class:`RunSpec` (what one run is, and its ``run_id``) and the record of a
run that did not finish (:func:`failed_record`).

How the record evolves (every later feature adds fields, e.g. a compiler choice, a schedule
or the worker host):

- A :class:`RunSpec` field added later is listed in :data:`ADDED_FIELDS` with its default;
  left at that default it stays out of the ``run_id`` hash, so the ids of existing results
  and of the committed baseline stay valid. Set to anything else, it enters the hash.
- An added *column* does not bump :data:`SCHEMA_VERSION`: readers fill a missing column
  with its default (:func:`upgrade_runs`), so older folders keep loading.
- An incompatible change (a column renamed or given another meaning) bumps
  :data:`SCHEMA_VERSION`; :func:`upgrade_runs` derives the new columns from an older
  folder's where it can (version 2's ``compiler`` from version 1's text), and otherwise the
  store refuses older folders with a message and the committed baseline is regenerated in
  the same commit.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pandas as pd

from backends import optimizers
from backends.base import (
    ADDED_OPTIMIZER_FIELDS,
    MODE_PATHS,
    OptimizerSpec,
    Schedule,
    SpecError,
    candidate_paths,
)
from backends.optimizers import find

#: 2: ``compiler`` holds the path's name (v1: free text, now ``compiler_detail``)
SCHEMA_VERSION = 2


class Status(str, enum.Enum):
    """What happened to a run. A plain string wherever it is stored or compared."""

    OK = "ok"  # trained to the end
    DIVERGED = "diverged"  # loss NaN/inf or above diverge_factor x its start: data, not an error
    ERROR = "error"  # raised an exception
    TIMEOUT = "timeout"  # ran past its timeout; its worker was killed
    CRASHED = "crashed"  # its worker died (segfault, out of memory, killed)
    SKIPPED = "skipped"  # could not run here (framework not installed, no such device)

    # equal to its value as a dict key, in pandas' isin and when printed
    __hash__ = str.__hash__
    __str__ = str.__str__
    __format__ = str.__format__


#: runs that trained: they have curves and timings; ``--resume`` keeps them
FINISHED = frozenset({Status.OK.value, Status.DIVERGED.value})
#: runs that should have finished and did not: ``optbench run`` exits 1 on any of them
FAILED = frozenset({Status.ERROR.value, Status.TIMEOUT.value, Status.CRASHED.value})
#: runs with no measurement at all
NOT_FINISHED = FAILED | {Status.SKIPPED.value}

#: the compiler a run asks for when it names none: its backend's fastest compiled path on
#: that device (measured at the start of the sweep where it depends on the machine)
DEFAULT_COMPILER = "default"

# --- columns ---------------------------------------------------------------------------

#: the configuration of a run, as runs.parquet holds it (hyperparameters follow, by kind)
CONFIG_COLUMNS = (
    "run_id",
    "backend",
    "mode",
    "compiler",  # the path the step ran on (backends.base.CompilePath), e.g. "inductor"
    "compiler_requested",  # what the sweep asked for: "default" or the path's name
    "compiler_choice",  # how the path was chosen: requested, the only one, or measured
    "device",
    "optimizer",  # the named configuration of the sweep, e.g. "sgd_momentum"
    "variant",  # "spec" (corrected to backends.base.KINDS) or "stock" (framework defaults)
    "schedule",  # the learning-rate schedule, backends.base.Schedule.text(), e.g. "constant"
    "batch_size",
    "seed",
    "dataset",
    "validation_fraction",  # of the training data, held out to choose learning rates
    "hidden",  # "64" or "128,64"
    "init",
    "dtype",
    "epochs",
    "max_steps",
    "block_steps",
    "warmup_steps",
    "eval_every",
    "diverge_factor",
    "kind",  # the optimizer kind of backends.base.KINDS, e.g. "sgd", or a plugin's name
    # where a plugin kind was imported from ("module:Object"; "" for a built-in kind): how
    # compare, rerun and a later report find it again (not in the run id)
    "optimizer_source",
)
#: measured numbers: a run that did not finish has them all, empty (NaN)
MEASURED_COLUMNS = (
    "diverged_step",
    "compile_s",
    "worker_run_index",
    "steps",
    "full_block_steps",
    "timed_blocks",
    "samples_per_s",
    "samples_per_s_mean",
    "train_wall_s",
    "eval_s",
    "run_s",
    # the reference kernel's ms around the run: the machine's speed then (benchmarks.core.reference)
    "reference_ms",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "final_val_loss",  # on the validation split (NaN where the sweep holds none out)
    "final_val_acc",
    "peak_memory_mb",
    "peak_rss_mb",
    "worker_max_rss_mb",
    "num_params",
    "threads",
)
#: what the worker says about itself: strings, empty where a run did not finish
DESCRIBED_COLUMNS = (
    "peak_memory_kind",
    "framework_version",
    "compiler_detail",  # what the path is, in the framework's words
    "cpu_affinity",
    "threads_reported",
    "matmul_precision",
    "blas",  # the BLAS library under the framework's matmuls, where it names one (numpy, torch)
    # the machine the run's worker ran on (an executor may run units on several); the
    # executor fills it in for a run that did not finish (benchmarks.run.execute.stamp_host)
    "host",
)
#: the machine a run ran on, beyond its ``host``: filled in by an executor that runs units
#: on other machines (``benchmarks.run.dask_executor.describe_host``); empty where
#: environment.json's machine ran every run
HOST_COLUMNS = ("cpu_model", "cpu_cores", "gpu_name")
#: the outcome
OUTCOME_COLUMNS = ("status", "error", "traceback")
CURVE_COLUMNS = (
    "run_id",
    "step",
    "epoch",
    "wall_s",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "val_loss",
    "val_acc",
)
TIMING_COLUMNS = ("run_id", "block", "phase", "steps", "seconds")
#: timing phases: the first step alone, warm-up blocks, then the blocks that count
PHASES = ("compile", "warmup", "timed")
#: the sort order of runs.parquet
RUN_ORDER = (
    "dataset",
    "backend",
    "device",
    "mode",
    "compiler",
    "variant",
    "optimizer",
    "lr",
    "batch_size",
    "seed",
)

#: columns added after version 1 and their value in folders written before them
RUN_COLUMN_DEFAULTS: dict[str, Any] = {
    "traceback": "",
    "compiler_requested": DEFAULT_COMPILER,
    "compiler_choice": "",
    "host": "",  # unknown: environment.json's host ran every run of such a folder
    "variant": "spec",
    "optimizer_source": "",
    "schedule": "constant",
    "validation_fraction": 0.0,
    "final_val_loss": math.nan,
    "final_val_acc": math.nan,
    "reference_ms": math.nan,  # not timed: compare leaves such runs unscaled
    "cpu_model": "",
    "cpu_cores": math.nan,
    "gpu_name": "",
    "blas": "",
}
#: version 1's ``compiler`` text, as each backend wrote it -> the path it describes
V1_COMPILERS = {
    "torch.compile": "inductor",
    "tf.function(jit_compile=True)": "xla",
    "tf.function(jit_compile=False)": "tf_function",
    "jax.jit": "jit",
}


def upgrade_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """A runs table of any supported version with every column this version has."""
    if "compiler_detail" not in runs and len(runs):  # version 1
        runs = runs.assign(compiler_detail=runs.get("compiler", ""))
        runs["compiler"] = [_v1_path(r) for r in runs.to_dict("records")]
    missing = {c: v for c, v in RUN_COLUMN_DEFAULTS.items() if c not in runs}
    return runs.assign(**missing) if missing else runs


def _v1_path(row: dict[str, Any]) -> str:
    text = str(row.get("compiler_detail") or "")
    for prefix, name in V1_COMPILERS.items():
        if text.startswith(prefix):
            return name
    return _static_default(row.get("backend", ""), row.get("mode", ""), row.get("device", "cpu"))


def _static_default(backend: str, mode: str, device: str) -> str:
    """A backend's first path for (mode, device), from its registry entry ("" if none)."""
    from backends import registry  # framework-free; imported here as it imports this module's

    entry = registry.REGISTRY.get(backend)
    here = candidate_paths(entry.paths if entry else MODE_PATHS, mode, device)
    return here[0].name if here else ""


# --- the spec of one run ---------------------------------------------------------------

#: RunSpec fields added after version 1 -> their default (kept out of run_id at it)
ADDED_FIELDS: dict[str, Any] = {
    "compiler": DEFAULT_COMPILER,
    "variant": "spec",
    "validation_fraction": 0.0,
}


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; ``run_id`` is a hash of it (timeout aside)."""

    backend: str
    mode: str
    device: str
    optimizer: str  # the named configuration, e.g. "sgd_momentum"
    opt: OptimizerSpec  # its kind and every hyperparameter
    batch_size: int
    seed: int
    dataset: str
    hidden: tuple[int, ...]
    init: str
    dtype: str
    epochs: int
    max_steps: int
    block_steps: int
    warmup_steps: int
    eval_every: int
    diverge_factor: float
    timeout_s: float = field(default=600.0, compare=False)
    compiler: str = DEFAULT_COMPILER  # asked for: "default" or a path's name
    variant: str = "spec"  # backends.base.VARIANTS
    validation_fraction: float = 0.0  # of the training data, held out (benchmarks.record.data)
    # the path it runs on and why, filled in by the driver (benchmarks.run.paths) before it runs;
    # not part of the run's identity: a resumed sweep keeps its ids whatever is chosen
    path: str = field(default="", compare=False)
    path_choice: str = field(default="", compare=False)
    #: where an optimizer plugin's kind comes from ("module:Object"; "" for a built-in
    #: kind): how a worker on another machine finds it. Not part of the identity: the run
    #: id hashes the plugin's name and values, not where it was imported from
    optimizer_source: str = field(default="", compare=False)

    @property
    def chosen(self) -> str:
        """The path this run takes: the resolved one, the one asked for, or else the
        backend's first path for its mode and device."""
        if self.path or self.compiler != DEFAULT_COMPILER:
            return self.path or self.compiler
        return _static_default(self.backend, self.mode, self.device)

    @property
    def lr(self) -> float:
        return self.opt.lr

    def config(self) -> dict[str, Any]:
        """The configuration as plain data (what the run id hashes, and more)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        d["hidden"] = list(self.hidden)
        d["opt"] = self.opt.to_dict()
        return d

    @property
    def run_id(self) -> str:
        return hashlib.sha1(_identity(self).encode()).hexdigest()[:12]

    def label(self) -> str:
        stock = " (stock)" if self.variant == "stock" else ""
        return (
            f"{self.backend}/{self.chosen or self.mode}/{self.device} {self.optimizer}{stock} "
            f"lr={self.lr:g} bs={self.batch_size} seed={self.seed}"
        )

    def row(self) -> dict[str, Any]:
        """The configuration columns of this run's row in runs.parquet."""
        cfg = self.config()
        cfg.pop("opt")
        row = {"run_id": self.run_id, **cfg, "hidden": ",".join(map(str, self.hidden))}
        row.update(
            compiler=self.chosen, compiler_requested=self.compiler, compiler_choice=self.path_choice
        )
        row["kind"] = self.opt.kind
        row["optimizer_source"] = self.optimizer_source
        row["schedule"] = self.opt.schedule.text()
        row.update(self.opt.hyperparameters())
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], timeout_s: float = 600.0) -> RunSpec:
        """The spec a row of runs.parquet was written from: the inverse of :meth:`row`
        (``timeout_s`` is not in the row). ``row`` as ``Store.table("runs")`` gives it (older
        versions upgraded by :func:`upgrade_runs`); the spec's ``run_id`` is the row's (see
        :func:`_spec_of`), its ``path`` the one the run took. KeyError or SpecError where the
        row is not a run's configuration.

        Example: ``RunSpec.from_row(runs.set_index("run_id", drop=False).loc[rid].to_dict())``
        """
        kind = str(row["kind"])
        source = str(row.get("optimizer_source") or "")
        declared = find(kind) or (optimizers.load(source) if source else None)
        if declared is None:
            raise SpecError(
                f"run {row.get('run_id', '?')}: optimizer kind {kind!r} is neither built in nor "
                f'a registered plugin; name its module in {optimizers.ENV}="{kind}=module:Object"'
            )
        values = {}
        for h in declared.hyperparameters:  # columns of other kinds are NaN here
            values[h.name] = bool(row[h.name]) if h.is_switch else float(row[h.name])
        hyper, params = ({}, values) if declared.is_plugin else (values, {})
        hyper["lr"] = float(row["lr"])
        # what the sweep asked for, and the path the driver resolved it to
        requested = row.get("compiler_requested") or DEFAULT_COMPILER
        spec = cls(
            **{f: str(row[f]) for f in _STR_FIELDS},
            **{f: int(row[f]) for f in _INT_FIELDS},
            opt=OptimizerSpec(
                kind, **hyper, params=params, schedule=Schedule.parse(row.get("schedule"))
            ),
            hidden=tuple(int(h) for h in str(row["hidden"]).split(",")),
            diverge_factor=float(row["diverge_factor"]),
            timeout_s=float(timeout_s),
            compiler=str(requested),
            variant=str(row.get("variant") or "spec"),
            validation_fraction=float(row.get("validation_fraction") or 0.0),
            path=str(row.get("compiler") or ""),
            path_choice=str(row.get("compiler_choice") or ""),
            optimizer_source=source,
        )
        return _spec_of(spec, str(row.get("run_id", "")))


_OPT_DEFAULTS = {f.name: f.default for f in fields(OptimizerSpec)}
_STR_FIELDS = ("backend", "mode", "device", "optimizer", "dataset", "init", "dtype")
_INT_FIELDS = (
    "batch_size",
    "seed",
    "epochs",
    "max_steps",
    "block_steps",
    "warmup_steps",
    "eval_every",
)


def _spec_of(spec: RunSpec, run_id: str) -> RunSpec:
    """``spec``, or the same configuration with integral hyperparameters as integers where
    that is what hashes to ``run_id``: a sweep file may say ``weight_decay = 0``, which the
    id hashes as written and Parquet stores as 0.0. Any other mismatch is left for the
    caller to see (``spec.run_id != run_id``)."""
    if spec.run_id == run_id:
        return spec
    as_int = {
        k: int(v)
        for k, v in spec.opt.to_dict().items()
        if k not in ("kind", "lr") and type(v) is float and v.is_integer()
    }
    other = replace(spec, opt=replace(spec.opt, **as_int))
    return other if other.run_id == run_id else spec


def _identity(spec: RunSpec) -> str:
    """The text the run id hashes: version 1's fields under their version-1 names (the
    optimizer kind was called ``name`` then), plus any added field set off its default."""
    d = spec.config()
    opt = d.pop("opt")
    d["opt"] = {"name": opt.pop("kind"), **opt}
    for name, default in ADDED_FIELDS.items():
        if d.get(name) == default:
            d.pop(name, None)
    for name in ADDED_OPTIMIZER_FIELDS:
        if getattr(spec.opt, name) == _OPT_DEFAULTS[name]:
            d["opt"].pop(name, None)
    return json.dumps(d, sort_keys=True, default=str)


def run_steps(n_train: int, batch_size: int, epochs: int, max_steps: int) -> int:
    """How many updates a run makes (what its learning-rate schedule spans): whole epochs
    of full batches, capped at ``max_steps`` (which alone sets it where epochs is 0)."""
    total = (n_train // batch_size) * epochs if epochs else max_steps
    return min(total, max_steps) if max_steps and epochs else total


def warmup_end(warmup_steps: int, block_steps: int) -> int:
    """The first timed step: the compile step and ``warmup_steps`` after it, rounded up to a
    whole block, so that timed blocks line up with evaluation points that are multiples of
    ``block_steps``. A run of no more steps than this has no timed block (no throughput)."""
    return -(-(1 + warmup_steps) // block_steps) * block_steps


def failed_record(spec: RunSpec, status: Status, error: str, traceback: str = "") -> dict[str, Any]:
    """The record of a run that raised, timed out, crashed, was skipped or could not start:
    the same columns as a finished run's, measurements empty."""
    if Status(status).value in FINISHED:
        raise ValueError(f"a failed run cannot have status {Status(status).value!r}")
    return {
        "run": {
            **spec.row(),
            **dict.fromkeys(MEASURED_COLUMNS, math.nan),
            **dict.fromkeys(DESCRIBED_COLUMNS, ""),
            "status": Status(status).value,
            "error": error,
            "traceback": traceback,
        },
        "curves": [],
        "timings": [],
    }
