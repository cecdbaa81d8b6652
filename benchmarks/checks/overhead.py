"""Does the suite measure the frameworks, or itself?

Times, side by side in one worker process per framework, the suite's steady-state step on
each of the backend's paths (the adapter, driven as ``benchmarks.run.runner`` drives it) and
each bare, idiomatic training loop written directly in that framework (each backend's
``bare.py``, through ``Backend.bare_loops``; this module imports no framework), in many
short interleaved rounds (:func:`benchmarks.run.paths.interleaved`). Per case, each side's
fastest variant (by its median round) is named, with its ms/step, and the suite's against
the bare loop's is the median of the rounds' ratios with a 95% interval
(:func:`benchmarks.core.stats.round_ratio`: the two blocks of a round share the machine's speed
of that moment), with the achieved TFLOP/s (6 x batch x parameters per step). Cases: on the
CPU, 784-64-10 at batch 128 on MNIST-5k; on a GPU, the shapes where launch latency or
compute dominates (synthetic data, large enough for batch 4096).

    python -m benchmarks.checks.overhead [--device gpu] [--backend NAME,NAME] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends import registry
from backends.base import ModelSpec, OptimizerSpec, SpecError, candidate_paths, init_weights
from benchmarks.core import stats
from benchmarks.run.paths import interleaved, step_block

SGD_MOMENTUM = OptimizerSpec("sgd", lr=0.01, momentum=0.9)
ADAM = OptimizerSpec("adam", lr=1e-3)
#: rounds, and the most steps in a block: many short rounds (see paths.interleaved)
ROUNDS, STEPS = 20, 50
#: instances of each variant, each built apart (see measure)
INSTANCES = 3
#: a CPU worker's threads, unless asked: both sides run in one worker with the same pools, so
#: the count changes the noise, not what is compared. On a 2-core VM two threads made NumPy
#: against the same NumPy read 0.91-0.98 (intervals +-8%: a multi-threaded matmul waits for
#: whichever core the host took away), one thread 0.98-1.01 (+-3%)
CPU_THREADS = 1


@dataclass(frozen=True)
class Case:
    optimizer: str  # a name for the table
    opt: OptimizerSpec
    hidden: tuple[int, ...]
    batch_size: int
    dataset: str = "mnist5k"


CASES = {
    "cpu": [
        Case("sgd_momentum", SGD_MOMENTUM, (64,), 128),
        Case("adam", ADAM, (64,), 128),
    ],
    # the cases of issue 8's table: launch-bound small steps, then compute-bound ones
    "gpu": [
        Case("adam", ADAM, (64,), 32, "synthetic:n=8192"),
        Case("adam", ADAM, (64,), 128, "synthetic:n=8192"),
        Case("adam", ADAM, (64,), 1024, "synthetic:n=8192"),
        Case("adam", ADAM, (1024, 1024), 1024, "synthetic:n=8192"),
        Case("sgd_momentum", SGD_MOMENTUM, (4096, 4096), 4096, "synthetic:n=16384"),
    ],
}


def suite_paths(name: str, device: str, compilers: list[str] | None = None) -> list[str]:
    """The suite paths timed for backend ``name`` on ``device``: every one it has there
    (eager included), or those of ``compilers`` that name it ("path" or "name=path", as
    ``optbench run --compiler`` takes them; "all" and "default" mean every path). Leaving a
    suite path out can only make the suite's fastest slower, never the bare loops faster."""
    here = [p.name for p in registry.entry(name).paths if device in p.devices]
    asked = [n for c in compilers or [] for b, _, n in [c.rpartition("=")] if b in ("", name)]
    if not asked or {"all", "default"} & set(asked):
        return here
    for n in asked:
        if n not in here:
            raise SpecError(
                f"--compiler {name}={n}: {name} has no path {n!r} on the {device}; "
                f"it has {', '.join(here)}"
            )
    return list(dict.fromkeys(asked))


def _suite_paths(
    name: str, device: str, case: Case, weights, x, y, wanted: list[str]
) -> dict[str, Any]:
    """``{path: block}`` for each of the ``wanted`` paths (:func:`suite_paths`)."""
    cls = registry.load(name)
    model = ModelSpec(x.shape[1], int(y.max()) + 1, case.hidden)
    out = {}
    for mode in cls.modes:
        for path in candidate_paths(cls.compile_paths(), mode, device):
            if path.name in out or path.name not in wanted:
                continue
            be = cls(mode=mode, device=device, compiler=path.name)
            state = be.init(model, case.opt, weights)
            out[path.name] = step_block(
                be, state, be.split_batches(*be.to_device(x, y), case.batch_size)
            )
    return out


def _variants(
    backend: str,
    device: str,
    case: Case,
    weights,
    x,
    y,
    suite_names: list[str],
    bare_names: list[str] | None = None,
) -> dict[tuple[str, str], Any]:
    """One instance of each variant named, ``{("suite" | "bare", name): block}`` (every bare
    loop where ``bare_names`` is None): its own model, optimizer state and batches."""
    suite = _suite_paths(backend, device, case, weights, x, y, suite_names)
    bare = registry.load(backend).bare_loops(
        case.opt, [w.copy() for w in weights], x, y, case.batch_size, device
    )
    keep = bare if bare_names is None else {k: bare[k] for k in bare_names}
    return {("suite", k): v for k, v in suite.items()} | {("bare", k): v for k, v in keep.items()}


#: the fewest steps in a timed block, and how long a block should last: a block of the
#: fastest variant lasts about BLOCK_S (at most ``steps`` steps), so a 10 ms step on a GPU
#: is timed in blocks of 10, and rounds stay short (see paths.interleaved)
MIN_STEPS, BLOCK_S = 10, 0.05


def block_steps(fastest_s: float, max_steps: int) -> int:
    """Steps per timed block for a case whose fastest variant takes ``fastest_s`` a step."""
    return min(max_steps, max(MIN_STEPS, round(BLOCK_S / max(fastest_s, 1e-9))))


def measure(
    backend: str,
    device: str,
    rounds: int,
    steps: int,
    progress: str | None = None,
    compilers: list[str] | None = None,
    instances: int = INSTANCES,
) -> list[dict[str, Any]]:
    """Worker task: interleaved suite/bare blocks for one backend, ``instances`` of each
    variant built apart; per case each side's fastest variant and the suite's ratio to the
    bare loop ([] where the backend sees no such device). Each finished case's row is also
    appended to ``progress`` (JSON lines), so a run stopped part-way keeps what it measured.
    ``compilers`` narrows the suite paths (:func:`suite_paths`)."""
    from benchmarks.record.data import cached_dataset

    if device not in registry.load(backend).devices():
        return []
    rows = []
    for case in CASES[device]:
        data = cached_dataset(case.dataset)
        x, y = data.x_train, data.y_train
        weights = init_weights(ModelSpec(x.shape[1], data.num_classes, case.hidden), seed=0)
        blocks = _variants(
            backend, device, case, weights, x, y, suite_paths(backend, device, compilers)
        )
        probe, first = {}, min(MIN_STEPS, steps)
        for k, block in blocks.items():  # compile, then a first estimate of each
            block(1)
            probe[k] = block(first) / first
        n = block_steps(min(probe.values()), steps)
        warm = {k: block(n) / n for k, block in blocks.items()}  # warm up each
        # a variant more than twice as slow as its side's best after warm-up cannot be the
        # fastest: it is timed no further (eager JAX or TensorFlow: 10-100x, many seconds)
        for side in ("suite", "bare"):
            best = min(v for k, v in warm.items() if k[0] == side)
            blocks = {k: b for k, b in blocks.items() if k[0] != side or warm[k] <= 2 * best}
        # more instances of the variants kept: identical code differs by its allocations'
        # luck (cache placement) by several percent, for as long as the instance lives
        every = {(*k, 0): b for k, b in blocks.items()}
        kept = {side: [k for w, k in blocks if w == side] for side in ("suite", "bare")}
        for i in range(1, instances):
            more = _variants(backend, device, case, weights, x, y, kept["suite"], kept["bare"])
            for k, block in more.items():
                block(1), block(n)
                every[(*k, i)] = block
        times = interleaved(every, rounds, n)
        # each side's fastest by its median round; the ratio from the rounds, each round's
        # two blocks side by side, instance i with instance i (stats.round_ratio)
        per = {k: [times[(*k, i)] for i in range(instances)] for k in blocks}
        typical = {k: float(np.median(np.concatenate(v))) for k, v in per.items()}
        suite_k = min((k for k in typical if k[0] == "suite"), key=typical.get)
        bare_k = min((k for k in typical if k[0] == "bare"), key=typical.get)
        ratio, low, high = stats.round_ratio(per[suite_k], per[bare_k])
        s, b = typical[suite_k], typical[bare_k]
        flops = 6 * case.batch_size * sum(w.size for w in weights)
        rows.append(
            {
                "backend": backend,
                "device": device,
                "optimizer": case.optimizer,
                "hidden": ",".join(map(str, case.hidden)),
                "batch_size": case.batch_size,
                "block_steps": n,
                "rounds": rounds,
                "instances": instances,
                "suite_path": suite_k[1],
                "suite_ms": s * 1e3,
                "bare_loop": bare_k[1],
                "bare_ms": b * 1e3,
                "ratio": ratio,
                "ratio_low": low,
                "ratio_high": high,
                "suite_tflops": flops / s / 1e12,
                # median ms/step of every variant timed, and the two compared, round by round
                "all_ms": {f"{w}:{k}": v * 1e3 for (w, k), v in typical.items()},
                "suite_rounds_ms": [[v * 1e3 for v in t] for t in per[suite_k]],
                "bare_rounds_ms": [[v * 1e3 for v in t] for t in per[bare_k]],
                # warm-up ms/step of the variants dropped as more than 2x slower than the best
                "dropped_ms": {
                    f"{w}:{k}": v * 1e3 for (w, k), v in warm.items() if (w, k) not in typical
                },
            }
        )
        if progress:
            with open(progress, "a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    return rows


def _interval(r: dict[str, Any]) -> str:
    low, high = r.get("ratio_low"), r.get("ratio_high")  # rows of older versions have none
    return "-" if low is None or high is None else f"{low:.2f}-{high:.2f}"


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'backend':<11} {'optimizer':<13} {'hidden':<10} {'batch':>5}  {'suite path':<16} "
        f"{'ms/step':>8}  {'fastest bare':<16} {'ms/step':>8} {'ratio':>6} {'95% interval':>13} "
        f"{'TFLOP/s':>8}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['backend']:<11} {r['optimizer']:<13} {r['hidden']:<10} {r['batch_size']:>5}  "
            f"{r['suite_path']:<16} {r['suite_ms']:>8.3f}  {r['bare_loop']:<16} "
            f"{r['bare_ms']:>8.3f} {r['ratio']:>6.2f} {_interval(r):>13} {r['suite_tflops']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.core import exitcodes
    from benchmarks.run.worker import WorkerFailure, call_isolated, default_threads

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backend", default=",".join(registry.installed()))
    p.add_argument("--device", choices=tuple(CASES), default="cpu")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds per case")
    p.add_argument(
        "--instances",
        type=int,
        default=INSTANCES,
        help="instances of each variant, each built apart and all timed in every round",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=STEPS,
        help=f"most steps in a timed block (fewer where a block of the fastest variant "
        f"would last over {BLOCK_S} s; at least {MIN_STEPS})",
    )
    p.add_argument(
        "--progress", default=None, help="append each finished case's row to this file (JSON lines)"
    )
    p.add_argument(
        "--compiler",
        default=None,
        help="only these suite paths, as `optbench run --compiler` takes them (e.g. "
        "torch=cudagraph,torch=eager); default: every path (bare loops are always all timed)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"threads of each worker, both sides alike (default: {CPU_THREADS} on the CPU, "
        "where the ratio is quietest; every core on a GPU machine)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--max-ratio", type=float, default=1.05, help="exit 1 if any ratio is above this"
    )
    args = p.parse_args(argv)
    for opt in ("rounds", "instances", "steps"):
        if getattr(args, opt) < 1:
            print(
                f"overhead: error: --{opt} {getattr(args, opt)}: must be 1 or more", file=sys.stderr
            )
            return exitcodes.BAD_INPUT
    threads = args.threads or (CPU_THREADS if args.device == "cpu" else None)
    rows, failed = [], []
    for name in args.backend.split(","):
        try:
            registry.require(name)
            compilers = args.compiler.split(",") if args.compiler else None
            suite_paths(name, args.device, compilers)  # a bad name fails here, not in a worker
            got = call_isolated(
                "benchmarks.checks.overhead:measure",
                {
                    "backend": name,
                    "device": args.device,
                    "rounds": args.rounds,
                    "steps": args.steps,
                    "instances": args.instances,
                    "progress": args.progress,
                    "compilers": compilers,
                },
                label=f"overhead-{name}",
                threads=threads,
                timeout=900,
            )
            if not got:
                print(f"overhead: {name} sees no {args.device} here; skipped", file=sys.stderr)
            rows += got
        except (SpecError, registry.BackendNotInstalled) as exc:
            print(f"overhead: error: {exc}", file=sys.stderr)
            return exitcodes.BAD_INPUT
        except WorkerFailure as exc:  # an installed backend that fails is a failure
            failed.append(f"{name}: {exc}")
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    for line in failed:
        print(f"FAIL: {line}", file=sys.stderr)
    worst = max((r["ratio"] for r in rows), default=float("nan"))
    print(
        f"worst ratio {worst:.2f} (target <= {args.max_ratio:.2f}); "
        f"{threads or default_threads()} thread(s) per worker, {args.instances} instance(s) "
        f"of each variant, {args.rounds} rounds",
        file=sys.stderr,
    )
    ok = bool(rows) and not failed and worst <= args.max_ratio
    return exitcodes.OK if ok else exitcodes.MEASURED_FAILURE


if __name__ == "__main__":
    sys.exit(main())
