"""Does the suite measure the frameworks, or itself?

Times, side by side in one worker process per framework, the suite's steady-state step
(the adapter, driven as ``benchmarks.runner`` drives it) and a bare, idiomatic training
loop written directly in that framework doing the same step (each backend's ``bare.py``,
through ``Backend.bare_loop``; this module imports no framework): compiled mode, batch 128,
784-64-10 MLP on MNIST-5k. Rounds alternate suite/bare so drift hits both alike; the
ratio of the fastest rounds' step times (suite / bare) is printed per backend and optimizer.

    python -m benchmarks.overhead [--backend NAME,NAME] [--rounds 15] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from backends import registry
from backends.base import ModelSpec, OptimizerSpec, SpecError, init_weights

BATCH = 128
HIDDEN = (64,)
OPTIMIZERS = {
    "sgd_momentum": OptimizerSpec("sgd", lr=0.01, momentum=0.9),
    "adam": OptimizerSpec("adam", lr=1e-3),
}


def _suite(name: str, opt: OptimizerSpec, weights, x, y):
    """The adapter, as the runner drives it: staged batches, one sync per block."""
    be = registry.create(name, mode="compiled")
    model = ModelSpec(x.shape[1], int(y.max()) + 1, HIDDEN)
    state = be.init(model, opt, weights)
    batches = be.split_batches(*be.to_device(x, y), BATCH)

    def block(steps: int) -> float:
        nonlocal state
        t0 = time.perf_counter()
        for i in range(steps):
            state, loss = be.train_step(state, *batches[i % len(batches)])
        be.sync(loss)
        return time.perf_counter() - t0

    return block


def measure(backend: str, rounds: int, steps: int) -> list[dict[str, Any]]:
    """Worker task: interleaved suite/bare blocks for one backend; fastest step times."""
    from benchmarks.data import cached_dataset

    data = cached_dataset("mnist5k")
    x, y = data.x_train, data.y_train
    model = ModelSpec(x.shape[1], data.num_classes, HIDDEN)
    weights = init_weights(model, seed=0)
    rows = []
    for oname, opt in OPTIMIZERS.items():
        suite = _suite(backend, opt, weights, x, y)
        bare = registry.load(backend).bare_loop(opt, [w.copy() for w in weights], x, y, BATCH)
        for _ in range(2):  # compile and warm up both
            suite(steps), bare(steps)
        s_times, b_times = [], []
        for r in range(rounds):  # who goes first alternates, so order effects cancel
            if r % 2:
                b_times.append(bare(steps) / steps)
                s_times.append(suite(steps) / steps)
            else:
                s_times.append(suite(steps) / steps)
                b_times.append(bare(steps) / steps)
        # the fastest round of each: the per-step cost with the least interference from the
        # machine (as timeit does); medians swing +-15% between runs on 2 shared cores
        s, b = min(s_times), min(b_times)
        rows.append(
            {
                "backend": backend,
                "optimizer": oname,
                "batch_size": BATCH,
                "suite_ms": s * 1e3,
                "bare_ms": b * 1e3,
                "ratio": s / b,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    from benchmarks import exitcodes
    from benchmarks.worker import WorkerFailure, call_isolated

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backend", default=",".join(registry.installed()))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--max-ratio", type=float, default=1.10, help="exit 1 if any ratio is above this"
    )
    args = p.parse_args(argv)
    rows, failed = [], []
    for name in args.backend.split(","):
        try:
            registry.require(name)
            rows += call_isolated(
                "benchmarks.overhead:measure",
                {"backend": name, "rounds": args.rounds, "steps": args.steps},
                label=f"overhead-{name}",
                threads=args.threads,
                timeout=900,
            )
        except (SpecError, registry.BackendNotInstalled) as exc:
            print(f"overhead: error: {exc}", file=sys.stderr)
            return exitcodes.BAD_INPUT
        except WorkerFailure as exc:  # an installed backend that fails is a failure
            failed.append(f"{name}: {exc}")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"{'backend':<11} {'optimizer':<13} {'suite ms/step':>13} {'bare ms/step':>12} {'ratio':>6}"
        )
        for r in rows:
            print(
                f"{r['backend']:<11} {r['optimizer']:<13} {r['suite_ms']:>13.3f} {r['bare_ms']:>12.3f} {r['ratio']:>6.2f}"
            )
    for line in failed:
        print(f"FAIL: {line}", file=sys.stderr)
    worst = max((r["ratio"] for r in rows), default=float("nan"))
    print(f"worst ratio {worst:.2f} (target <= {args.max_ratio:.2f})", file=sys.stderr)
    ok = not failed and worst <= args.max_ratio
    return exitcodes.OK if ok else exitcodes.MEASURED_FAILURE


if __name__ == "__main__":
    sys.exit(main())
