"""One command that checks a GPU machine: ``make gpu-check`` (``python3 -m benchmarks.checks.gpu_check``).

Runs from the source tree with the Python it finds (``PYTHONPATH=.``, no install step, no
network), on every installed backend that sees the GPU:

1. ``optbench parity --device gpu``: every checked row (every path) within tolerance;
2. the GPU overhead benchmark: the suite's fastest path within :data:`MAX_RATIO` of the
   fastest bare loop, per backend and case (absolute ms beside each ratio);
3. ``pytest -m gpu``;
4. the smoke, gpu and gpu-wide sweeps on the GPU: no failed run, and at 784-4096-4096-10,
   batch 4096, at least :data:`MIN_FRACTION_OF_PEAK` of the GPU's float32 peak per backend;
5. all of it within ``--budget`` (default :data:`BUDGET_S`; a target of the full check): each
   step gets what is left after the least the steps still to come need (:data:`MIN_STEP_S`),
   and a step that cannot get its own least is CUT, said so, rather than started and killed.

The steps measured least so far come first: a GPU is lent for minutes, and a lease that
ends part-way should still leave their figures.

Prints each target with PASS or FAIL and exits 1 if any is missed (2 when no GPU is seen).
Everything it writes goes under ``--out`` (default ``results/gpu-check``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchmarks.core import exitcodes
from benchmarks.core.flops import peak_of, tflops
from benchmarks.record.schema import FINISHED

MAX_RATIO = 1.05
#: the wide sweep's throughput target, a fraction of the GPU's float32 peak (without tensor
#: cores; ``analysis.PEAK_FP32_TFLOPS``): 45 of an H100 SXM's or H200's 67 TFLOP/s, as the
#: absolute 45 it replaces, which an H100 PCIe (51 peak) could not reach
MIN_FRACTION_OF_PEAK = 0.67
PARITY_TEST = "tests/test_gpu.py::test_parity_on_the_gpu"
#: the suite paths the overhead step times. torch's ``inductor`` is left out: it costs a
#: compile per case on the GPU (6.7 s at 4096 x 4096 on an H200; the check has minutes),
#: and it was 3x slower than ``cudagraph`` at 784-1024-1024-10, batch 1024, and
#: tied at 4096 x 4096 (H200, the sweeps' start-of-sweep measurement). Leaving a suite path
#: out can only raise a ratio, so the check stays conservative; `make bench-micro
#: DEVICE=gpu` times every path.
OVERHEAD_COMPILERS = "torch=cudagraph,torch=eager"
#: seconds each step may take before it counts as missed (a hung step must not eat the
#: machine's lease)
STEP_TIMEOUT_S = {"parity": 240, "sweep": 180, "overhead": 240, "pytest": 240}
#: the least each step needs to be worth starting: with less left of the budget (after the
#: least of the steps still to come), a step is CUT, said so, rather than started and
#: killed. Rough, from the one GPU run so far (an H200: parity of two backends ~60 s, a JAX
#: SGD first step 12-17 s, so a sweep of several runs ~30 s)
MIN_STEP_S = {"parity": 60, "sweep": 30, "overhead": 45, "pytest": 45}
#: the whole check's budget where --budget gives none: a lent machine's 10 minutes a command,
#: less a minute for start-up and the copy back
BUDGET_S = 540
#: --profile: the steps and sweeps each runs; "quick" is for a short window (parity and the
#: smoke sweep, the least measured first), "full" everything
PROFILES = {
    "full": {"skip": "", "sweeps": "smoke,gpu,gpu-wide"},
    "quick": {"skip": "overhead,pytest", "sweeps": "smoke"},
}


#: set in every step: several GPU processes share the device in a step (pytest's process
#: and the sweep workers it starts), and JAX takes 75% of the GPU's memory at its first use
#: and TensorFlow all of it unless told to grow; a caller's own setting wins
SHARED_GPU_ENV = {
    k: os.environ.get(k, v)
    for k, v in (("XLA_PYTHON_CLIENT_PREALLOCATE", "false"), ("TF_FORCE_GPU_ALLOW_GROWTH", "true"))
}


def _run(args: list[str], timeout: float, log: Path) -> tuple[int, str]:
    """``python -m ARGS`` from the source tree; (exit code, stdout). stdout goes to ``log``
    and stderr beside it (``.stderr``) as they are written, so a step that is stopped part-way
    (here at ``timeout``, or the whole check by its caller) leaves what it printed.

    The step runs in a process group of its own, and a timeout kills the whole group: a
    sweep's workers and pytest's ``optbench`` drivers would otherwise keep training on the
    GPU while the next steps are timed."""
    env = {
        **os.environ,
        **SHARED_GPU_ENV,
        "PYTHONPATH": os.pathsep.join(filter(None, [".", os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    t0 = time.monotonic()
    err_log = log.with_suffix(".stderr")
    with open(log, "w") as out, open(err_log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], env=env, stdout=out, stderr=err,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = 124
            err.write(f"\ntimed out after {timeout:.0f} s\n")
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # what the step left running, too
            proc.wait()
    print(f"  {' '.join(args[:3])}... exit {code} in {time.monotonic() - t0:.0f} s (log: {log})")
    return code, log.read_text()


Limit = Callable[[str], float]
Target = tuple[str, bool, str]  # (target, met, figures)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="results/gpu-check")
    p.add_argument("--backend", default=None, help="default: every installed backend but numpy")
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="full",
        help="full: every step and sweep; quick: parity and the smoke sweep (a short window)",
    )
    p.add_argument(
        "--skip",
        default=None,
        help="comma-separated steps to leave out: parity,sweeps,overhead,pytest (default: "
        "the profile's)",
    )
    p.add_argument(
        "--sweeps",
        default=None,
        help="comma-separated sweeps to run on the GPU (default: the profile's; full: "
        "smoke,gpu,gpu-wide)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        help=f"seconds the whole check may take (default {BUDGET_S}: a lent machine's 10 "
        "minutes a command, less start-up): each step gets what is left after the least the "
        "steps still to come need; a step that cannot get its least is CUT, said so",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from backends import registry
    from benchmarks.core.environment import gpu_present

    args = _parser().parse_args(argv)
    if not gpu_present():
        print("gpu-check: no GPU is visible here (nvidia-smi finds none)", file=sys.stderr)
        return exitcodes.BAD_INPUT
    t0 = time.monotonic()
    profile = PROFILES[args.profile]
    skip_text = profile["skip"] if args.skip is None else args.skip
    sweeps = [
        x for x in (profile["sweeps"] if args.sweeps is None else args.sweeps).split(",") if x
    ]
    later: list[str] = []  # the steps still to come after the one running

    def limit(step: str) -> float:
        """The step's time limit: what is left of ``--budget`` after the least the steps
        still to come need, at most :data:`STEP_TIMEOUT_S`."""
        left = args.budget - (time.monotonic() - t0) - sum(MIN_STEP_S[s] for s in later)
        return max(1.0, min(STEP_TIMEOUT_S[step], left))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    asked = args.backend.split(",") if args.backend else None
    on_gpu, elsewhere = gpu_backends(asked or [n for n in registry.installed() if n != "numpy"])
    for name, why in elsewhere.items():
        print(f"{name}: not on the GPU here ({why}); not checked")
    if not on_gpu:
        print("gpu-check: no installed backend sees the GPU", file=sys.stderr)
        return exitcodes.BAD_INPUT
    backends = ",".join(on_gpu)
    skip = set(filter(None, skip_text.split(",")))
    steps: list[tuple[str, str, Callable[[], list[Target]]]] = []  # (name, kind, run)
    if "parity" not in skip:
        steps.append(("parity", "parity", lambda: _parity_targets(out, backends, limit)))
    if "overhead" not in skip:
        steps.append(("overhead", "overhead", lambda: _overhead_targets(out, backends, limit)))
    if "pytest" not in skip:
        steps.append(("pytest", "pytest", lambda: _pytest_targets(out, "parity" in skip, limit)))
    if "sweeps" not in skip:
        for sweep in sweeps:
            steps.append(
                (f"{sweep} sweep", "sweep", lambda s=sweep: _sweep_targets(out, backends, s, limit))
            )
    targets = _run_steps(steps, later, limit, args.budget, t0)
    took = time.monotonic() - t0
    if args.profile == "full" and not skip:  # a partial check says nothing of the whole's time
        within = f"the whole check within its budget ({args.budget:.0f} s)"
        targets.append((within, took <= args.budget, f"{took:.0f} s"))
    print("\nTarget" + " " * 62 + "result  figures")
    for name, met, figures in targets:
        print(f"{name:<68} {'PASS' if met else 'FAIL':<7} {figures}")
    missed = sum(not met for _, met, _ in targets)
    print(f"\n{len(targets) - missed}/{len(targets)} targets met in {took:.0f} s")
    return exitcodes.OK if targets and not missed else exitcodes.MEASURED_FAILURE


def _run_steps(steps, later: list[str], limit: Limit, budget: float, t0: float) -> list[Target]:
    """Each step in turn, with ``later`` naming the kinds still to come (what ``limit``
    keeps back for them); a step whose limit is below its :data:`MIN_STEP_S` is CUT, a
    missed target that says so. Each step's targets are printed as it ends (flushed), so a
    check stopped part-way leaves what it found."""
    targets: list[Target] = []
    for i, (name, kind, run) in enumerate(steps):
        later[:] = [k for _, k, _ in steps[i + 1 :]]
        got = limit(kind)
        if got < MIN_STEP_S[kind]:
            left = budget - (time.monotonic() - t0)
            mine = [(f"{name}: CUT, not run", False, f"{left:.0f} s of the budget left")]
        else:
            mine = run()
        for target, met, figures in mine:
            print(f"{'PASS' if met else 'FAIL'}  {target}  {figures}", flush=True)
        targets += mine
    return targets


def _parity_targets(out: Path, backends: str, limit: Limit) -> list[Target]:
    """Step 1: parity on the GPU, every checked row ok."""
    targets: list[Target] = []
    print("parity on the GPU")
    code, text = _run(
        ["benchmarks.app.cli", "parity", "--device", "gpu", "--backend", backends],
        limit("parity"),
        out / "parity.log",
    )
    targets.append(
        (
            "parity: every checked row ok on the GPU",
            code == 0,
            f"{len(re.findall(r' ok$', text, re.M))} rows ok, "
            f"{len(re.findall(r' FAIL', text))} FAIL (exit {code})",
        )
    )
    return targets


def _overhead_targets(out: Path, backends: str, limit: Limit) -> list[Target]:
    """The overhead benchmark on the GPU: suite/bare within MAX_RATIO per case."""
    targets: list[Target] = []
    print("overhead benchmark on the GPU")
    (out / "overhead.rows.jsonl").unlink(missing_ok=True)  # rows of an earlier check
    code, text = _run(
        [
            "benchmarks.checks.overhead",
            "--device",
            "gpu",
            "--backend",
            backends,
            "--json",
            "--rounds",
            "10",
            "--instances",
            "1",  # one build of each: a JAX SGD compile took 12-17 s on an H200
            "--progress",
            str(out / "overhead.rows.jsonl"),
            "--compiler",
            OVERHEAD_COMPILERS,
        ],
        limit("overhead"),
        out / "overhead.log",
    )
    rows = _json_rows(text) or _progress_rows(out / "overhead.rows.jsonl")
    for r in rows:
        case = f"{r['backend']} {r['optimizer']} {r['hidden']} batch {r['batch_size']}"
        targets.append(
            (
                f"overhead {case}: suite/bare <= {MAX_RATIO}",
                r["ratio"] <= MAX_RATIO,
                f"{r['suite_path']} {r['suite_ms']:.3f} ms vs {r['bare_loop']} {r['bare_ms']:.3f} ms"
                f" = {r['ratio']:.2f}{_interval(r)}",
            )
        )
    if not rows:
        targets.append(
            ("overhead: rows measured", False, f"exit {code}, see {out / 'overhead.log'}")
        )
    return targets


def _pytest_targets(out: Path, parity_skipped: bool, limit: Limit) -> list[Target]:
    """``pytest -m gpu``."""
    targets: list[Target] = []
    print("pytest -m gpu")
    # the parity test repeats step 1 (a minute on an H200): left out where step 1 ran
    again = [] if parity_skipped else ["--deselect", PARITY_TEST]
    code, text = _run(
        ["pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *again],
        limit("pytest"),
        out / "pytest.log",
    )
    targets.append(
        ("pytest -m gpu", code == 0, text.strip().splitlines()[-1] if text.strip() else "")
    )
    return targets


def _sweep_targets(out: Path, backends: str, sweep: str, limit: Limit) -> list[Target]:
    """One sweep on the GPU: no failed run; on gpu-wide, the throughput targets."""
    targets: list[Target] = []
    print(f"sweep {sweep} on the GPU")
    folder = out / sweep
    code, _ = _run(
        [
            "benchmarks.app.cli",
            "run",
            "--sweep",
            sweep,
            "--device",
            "gpu",
            "--backend",
            backends,
            "--out",
            str(folder),
            "--quiet",
            "--report",
        ],
        limit("sweep"),
        out / f"{sweep}.log",
    )
    runs = _runs(folder)
    failed = runs[~runs["status"].isin(FINISHED)] if runs is not None else None
    met = code == 0 and failed is not None and failed.empty
    what = "no runs table" if runs is None else f"{len(runs)} runs, {len(failed)} not finished"
    targets.append((f"sweep {sweep}: 0 failed runs", met, what))
    if sweep == "gpu-wide" and runs is not None:
        targets += throughput_targets(runs, _gpu_names(folder))
    return targets


def gpu_backends(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Of ``names``, those whose framework sees the GPU here, and why each other is not
    checked (not installed, or it sees no GPU: a CPU-only build, say), asked of each
    backend in its own process (``optbench backends``' probe): a backend that cannot see
    the GPU is named, never counted as a failure."""
    from backends import registry
    from benchmarks.run.worker import WorkerFailure, call_isolated

    on, off = [], {}
    for name in names:
        entry = registry.REGISTRY.get(name)
        if entry is None or entry.missing():
            off[name] = "not installed"
            continue
        try:
            devices = call_isolated(
                "benchmarks.checks.gpu_check:_devices", {"name": name}, label=f"probe-{name}",
                threads=1, timeout=300,
            )  # fmt: skip
        except WorkerFailure as exc:
            off[name] = f"its probe failed: {str(exc).splitlines()[0]}"
            continue
        if "gpu" in devices:
            on.append(name)
        else:
            off[name] = f"it sees {', '.join(devices) or 'no device'}"
    return on, off


def _devices(name: str) -> list[str]:
    """Worker task: the devices ``name``'s framework sees."""
    from backends import registry

    return list(registry.load(name).devices())


def throughput_targets(runs: pd.DataFrame, gpus: list[str]) -> list[tuple[str, bool, str]]:
    """The wide sweep's TFLOP/s target per backend at batch 4096: the best finished run's
    achieved TFLOP/s against :data:`MIN_FRACTION_OF_PEAK` of the GPU's float32 peak (named);
    a backend with no finished run there misses it, said so (no ``idxmax`` over NaN)."""

    peak = peak_of(gpus)
    out = []
    wide = runs[runs["batch_size"] == 4096]
    for backend, g in wide.groupby("backend"):
        done = g[g["status"].isin(["ok", "diverged"])].dropna(subset=["samples_per_s"])
        if peak is None:
            out.append((f"{backend}: TFLOP/s at batch 4096", False, f"no known peak for {gpus}"))
            continue
        name, tf = peak
        want = MIN_FRACTION_OF_PEAK * tf
        what = f"{backend}: >= {want:.0f} TFLOP/s ({MIN_FRACTION_OF_PEAK:g} x {name}'s {tf:g}) at batch 4096"
        if done.empty:
            out.append((what, False, f"no finished run ({len(g)} runs)"))
            continue
        best = done.loc[done["samples_per_s"].idxmax()]
        got = tflops(best["samples_per_s"], best["num_params"])
        out.append((what, bool(got >= want), f"{got:.1f} TFLOP/s via {best['compiler']}"))
    return out


def _gpu_names(folder: Path) -> list[str]:
    """The GPUs a sweep's environment.json recorded."""
    try:
        env = json.loads((folder / "environment.json").read_text())
    except (OSError, ValueError):
        return []
    return [g.get("name", "") for g in env.get("gpus") or []]


def _interval(row: dict) -> str:
    """The ratio's 95% interval, where the row has one."""
    if row.get("ratio_low") is None or row.get("ratio_high") is None:
        return ""
    return f" [{row['ratio_low']:.2f}, {row['ratio_high']:.2f}]"


def _runs(folder: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(folder / "runs.parquet")
    except Exception:  # noqa: BLE001 - a missing or broken table is a missed target
        return None


def _progress_rows(path: Path) -> list[dict]:
    """The rows a stopped overhead benchmark had finished (JSON lines)."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def _json_rows(text: str) -> list[dict]:
    """The JSON list the overhead benchmark prints on stdout."""
    try:
        rows = json.loads(text)
    except ValueError:
        return []
    return rows if isinstance(rows, list) else []


if __name__ == "__main__":
    sys.exit(main())
