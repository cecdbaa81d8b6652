"""How often ``optbench compare`` (default recheck) catches a real slowdown, and how often it
calls noise a regression: trials on this machine, with real sweeps and real commits.

    python -m bench.compare_trials --trials 10 --out results/compare-trials

In a throwaway clone of this repository's HEAD (commit A) it makes commits that wait,
after each timed block's device sync, ``f - 1`` times the block's own time (a block
``f`` times as long: 1.1, 1.2, 1.3), as a real regression in the step would. Each trial
sweeps A, then the slowed commit, and compares them; ``unchanged`` compares two sweeps of A
(both directions); ``threads`` compares A at ``--threads 2`` against ``--threads 1``. The
sweep is the NumPy reference at batches 128 and 512, SGD with momentum, 3 seeds, 3 epochs
of MNIST-5k: runs of 2-5 timed blocks, as short as the issue that asked for this. The
result: one row per trial (kind, exit code, the stored and re-measured ratio of each
group) in ``trials.csv``, and a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SWEEP = [
    "--sweep", "default", "--backend", "numpy", "--optimizer", "sgd_momentum",
    "--lr", "0.03", "--batch-size", "128,512", "--seeds", "3", "--epochs", "3",
]  # fmt: skip
#: the line after which a slowed commit waits (the timer stops on the next line)
SYNC = "            be.sync_losses(losses)\n"


def _slowed_source(text: str, factor: float) -> str:
    """runner.py with a busy-wait of ``factor - 1`` times each block's time after its sync."""
    assert SYNC in text, "runner.py changed: find the block's sync line again"
    wait = (
        f"            _end = time.perf_counter()  # trial: a block {factor}x as long\n"
        f"            while time.perf_counter() < _end + {factor - 1:.3f} * (_end - t0):\n"
        "                pass\n"
    )
    return text.replace(SYNC, SYNC + wait, 1)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def clone_with_slowdowns(work: Path, factors: list[float]) -> tuple[Path, dict[str, str]]:
    """A clone of HEAD and a commit per slowdown factor; their hashes by name."""
    repo = work / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    git(repo, "config", "user.email", "trials@optbench")
    git(repo, "config", "user.name", "trials")
    commits = {"A": git(repo, "rev-parse", "HEAD")}
    runner = repo / "benchmarks" / "run" / "runner.py"
    original = runner.read_text()
    for f in factors:
        git(repo, "checkout", "-q", commits["A"])
        runner.write_text(_slowed_source(original, f))
        git(repo, "commit", "-qam", f"trial: every timed block {f}x as long")
        commits[f"x{f}"] = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", commits["A"])
    return repo, commits


def _optbench(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.app.cli", *args],
        cwd=repo, env=env, capture_output=True, text=True,
    )  # fmt: skip


def sweep(repo: Path, commit: str, out: Path, threads: int = 1, args: list[str] = SWEEP) -> None:
    """The sweep ``args`` with the code of ``commit`` (checked out in ``repo``) into ``out``."""
    git(repo, "checkout", "-q", commit)
    done = _optbench(repo, "run", *args, "--threads", str(threads), "--out", str(out), "--quiet")
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({out}):\n{done.stderr[-2000:]}")


def compare(repo: Path, base: Path, cur: Path, *args: str) -> tuple[int, dict, float]:
    """``optbench compare BASE CUR --format json`` run from ``repo``: exit code, output, s."""
    t0 = time.perf_counter()
    done = _optbench(repo, "compare", str(base), str(cur), "--format", "json", *args)
    took = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"compare failed:\n{done.stderr[-2000:]}")
    return done.returncode, json.loads(done.stdout), took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--factors", default="1.1,1.2,1.3", help="slowdowns to plant")
    p.add_argument("--kinds", default="unchanged,threads,slowed")
    p.add_argument(
        "--unchanged-trials", type=int, default=5, help="trials of two unchanged sweeps (each "
        "compared both ways: 5 give 10 directions)",
    )  # fmt: skip
    p.add_argument("--out", default="results/compare-trials")
    args = p.parse_args(argv)
    factors = [float(f) for f in args.factors.split(",")]
    kinds = args.kinds.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="optbench-trials-") as tmp:
        work = Path(tmp)
        repo, commits = clone_with_slowdowns(work, factors)
        for i in range(args.trials):
            res = work / f"t{i}"
            plan = []
            if "unchanged" in kinds and i < args.unchanged_trials:
                sweep(repo, commits["A"], res / "a1")
                sweep(repo, commits["A"], res / "a2")
                plan += [
                    ("unchanged, 1st vs 2nd", res / "a1", res / "a2"),
                    ("unchanged, 2nd vs 1st", res / "a2", res / "a1"),
                ]
            if "threads" in kinds:
                sweep(repo, commits["A"], res / "th2", threads=2)
                sweep(repo, commits["A"], res / "th1", threads=1)
                plan.append(("threads 2->1", res / "th2", res / "th1"))
            if "slowed" in kinds:
                base = res / "a1"
                if not base.exists():
                    sweep(repo, commits["A"], base)
                for f in factors:
                    sweep(repo, commits[f"x{f}"], res / f"x{f}")
                    plan.append((f"slowed x{f}", base, res / f"x{f}"))
            git(repo, "checkout", "-q", commits["A"])
            for kind, b, c in plan:
                code, result, took = compare(repo, b, c)
                for g in result["groups"]:
                    rows.append(
                        {
                            "trial": i, "kind": kind, "exit": code, "compare_s": round(took, 1),
                            "batch_size": g["batch_size"], "ratio": g["ratio"],
                            "ci_high": g["ci_high"], "floor": g.get("floor"), "first_verdict": g.get("first_verdict"),
                            "recheck": g.get("recheck"), "recheck_ratio": g.get("recheck_ratio"),
                            "recheck_low": g.get("recheck_low"), "recheck_high": g.get("recheck_high"),
                            "recheck_rounds": g.get("recheck_rounds"), "verdict": g["verdict"],
                        }
                    )  # fmt: skip
                print(f"trial {i} {kind}: exit {code} ({took:.0f} s)", flush=True)
            pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)
    table = pd.DataFrame(rows)
    per = table.groupby(["kind", "trial"])["exit"].first().groupby("kind")
    print(pd.DataFrame({"exit 1": per.sum(), "trials": per.size()}).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
