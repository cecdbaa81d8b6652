"""The report's statistics (benchmarks.report.analysis), on small hand-built tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.core import stats
from benchmarks.record.schema import Status
from benchmarks.report import analysis as an
from benchmarks.report import frameworks
from benchmarks.track import change

OK, DIVERGED = Status.OK.value, Status.DIVERGED.value
ERROR, TIMEOUT, SKIPPED = Status.ERROR.value, Status.TIMEOUT.value, Status.SKIPPED.value
STEPS = 10  # steps per timed block


def run(rid: str, status: str = OK, **kw) -> dict:
    """A runs.parquet row: numpy/compiled/cpu, sgd lr 0.1, batch 32, seed 0 unless given."""
    return {
        "run_id": rid,
        "backend": "numpy",
        "mode": "compiled",
        "compiler": "numpy",
        "device": "cpu",
        "optimizer": "sgd",
        "lr": 0.1,
        "batch_size": 32,
        "seed": 0,
        "status": status,
        "error": "",
        "diverged_step": math.nan,
        "compile_s": 0.5,
        "block_steps": STEPS,
        "samples_per_s": math.nan,
        "final_test_acc": math.nan,
        "final_test_loss": math.nan,
        **kw,
    }


def blocks(rid: str, rates: list[float], batch_size: int = 32) -> list[dict]:
    """Timed blocks of STEPS steps at the given samples/s."""
    return [
        {
            "run_id": rid,
            "block": i + 2,
            "phase": "timed",
            "steps": STEPS,
            "seconds": STEPS * batch_size / r,
        }
        for i, r in enumerate(rates)
    ]


def curve(rid: str, points: list[tuple[int, float, float]]) -> list[dict]:
    """Evaluations (step, wall_s, test_acc), with a training-only row between each."""
    rows = []
    for step, wall, acc in points:
        rows.append({"run_id": rid, "step": step - 1, "wall_s": wall - 0.1, "test_acc": math.nan})
        rows.append({"run_id": rid, "step": step, "wall_s": wall, "test_acc": acc})
    return rows


def df(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# --- counts ----------------------------------------------------------------------------


def test_config_means_counts_failed_and_skipped_apart():
    runs = df(
        [
            run("a", OK, seed=0, final_test_acc=0.9, final_test_loss=0.3),
            run("b", OK, seed=1, final_test_acc=0.8, final_test_loss=0.5),
            run("c", DIVERGED, seed=2, diverged_step=23),
            run("d", ERROR, seed=3),
            run("e", TIMEOUT, seed=4),
            run("f", SKIPPED, seed=5),
        ]
    )
    (row,) = an.config_means(runs).to_dict("records")
    assert (row["runs"], row["ok"], row["diverged"], row["failed"], row["skipped"]) == (
        6,
        2,
        1,
        2,
        1,
    )
    assert row["acc"] == pytest.approx(0.85) and row["loss"] == pytest.approx(0.4)
    assert row["diverged_steps"] == "23"


def test_config_means_without_ok_runs_has_no_accuracy():
    (row,) = an.config_means(df([run("a", DIVERGED), run("b", ERROR, seed=1)])).to_dict("records")
    assert math.isnan(row["acc"]) and row["ok"] == 0 and row["failed"] == 1


# --- throughput ------------------------------------------------------------------------


def test_throughput_pools_the_blocks_of_a_group():
    runs = df([run("a"), run("b", seed=1)])
    timings = df(blocks("a", [1000, 2000, 3000]) + blocks("b", [4000, 5000]))
    (row,) = an.throughput(an.block_rates(runs, timings), ["batch_size", *an.GROUP]).to_dict(
        "records"
    )
    assert row["samples_per_s"] == pytest.approx(3000)
    assert row["ci_low"] <= row["samples_per_s"] <= row["ci_high"]
    assert (row["blocks"], row["timed_runs"]) == (5, 2)


def test_median_ci():
    rng = np.random.default_rng(1)
    runs = [rng.normal(100, 5, 20), rng.normal(110, 5, 20), rng.normal(90, 5, 20)]
    med, lo, hi = stats.median_ci(runs)
    assert med == pytest.approx(np.median(np.concatenate(runs)))
    assert lo < med < hi and hi - lo < 30
    # pinned for this seed: a bootstrap that returned (median, median), or lost the run
    # stage (blocks alone: about half as wide), would move them
    assert (lo, hi) == pytest.approx((89.640, 110.041), abs=1e-3)
    assert stats.median_ci(runs) == (med, lo, hi)  # deterministic
    assert stats.median_ci([np.array([5.0])]) == (5.0, 5.0, 5.0)
    assert all(np.isnan(stats.median_ci([])))


def test_paired_ratio_bounds_are_pinned():
    rng = np.random.default_rng(2)
    base = [rng.normal(100, 8, 10) for _ in range(4)]
    cur = [b * 0.93 * rng.normal(1, 0.08, 10) for b in base]
    ratio, lo, hi = stats.paired_ratio(base, cur)
    assert (ratio, lo, hi) == pytest.approx((0.93264, 0.88835, 0.97942), abs=1e-5)
    # one-sided 99% bounds lie outside the 95% ones; the robust (median pair) change too
    _, lo99, hi99 = stats.paired_ratio(base, cur, level=0.99)
    assert lo99 < lo and hi < hi99
    assert stats.paired_ratio(base, cur, robust=True)[0] != ratio


# --- the verdict -----------------------------------------------------------------------


@pytest.fixture
def sweep() -> tuple[pd.DataFrame, pd.DataFrame]:
    """numpy and jax at batch 32 (numpy with a diverged, a failed and a skipped run) and
    numpy alone at batch 512, ten times faster: the verdict must not pool the two. Both
    series ran seeds 0, 1, 3 and 4 (jax's beyond 0 skipped), so the verdict keeps them all."""
    runs = df(
        [
            run("n0", final_test_acc=0.9, compile_s=0.2),
            run("n1", seed=1, final_test_acc=0.8, compile_s=0.4),
            run("n2", DIVERGED, lr=0.3, diverged_step=25, compile_s=0.6),
            run("n3", ERROR, seed=3, compile_s=math.nan),
            run("n4", SKIPPED, seed=4, compile_s=math.nan),
            run("j0", backend="jax", final_test_acc=0.7),
            run("j1", backend="jax", lr=0.01, final_test_acc=0.95),
            run("n512", batch_size=512, final_test_acc=0.9),
            *(run(f"js{s}", SKIPPED, backend="jax", seed=s, compile_s=math.nan) for s in (1, 3, 4)),
        ]
    )
    timings = df(
        blocks("n0", [1000, 2000, 3000])
        + blocks("n1", [4000, 5000])
        + blocks("n2", [100, 100, 9999])  # the last block diverged: left out
        + blocks("j0", [6000, 6000])
        + blocks("j1", [6000])
        + blocks("n512", [30_000, 30_000], batch_size=512)
    )
    return runs, timings


def test_verdict_rows(sweep):
    runs, timings = sweep
    v = an.analyse(runs, None, timings).verdict
    assert list(v.columns) == an.VERDICT_COLUMNS
    assert [(r.batch_size, r.backend) for r in v.itertuples()] == [
        (32, "jax"),
        (32, "numpy"),
        (512, "numpy"),
    ]
    numpy32 = v.iloc[1]
    # pooled blocks 100, 100, 1000, 2000, 3000, 4000, 5000 (not 9999, the diverged block)
    assert numpy32["samples_per_s"] == pytest.approx(2000)
    assert numpy32["blocks"] == 7 and numpy32["throughput_source"] == an.FROM_BLOCKS
    assert numpy32["relative"] == pytest.approx(2000 / 6000)
    assert (numpy32["runs"], numpy32["ok"], numpy32["diverged"]) == (5, 2, 1)
    assert (numpy32["failed"], numpy32["skipped"]) == (1, 1)
    assert numpy32["compile_s"] == pytest.approx(0.4)  # median of finished runs only
    assert numpy32["best_test_acc"] == pytest.approx(0.85) and numpy32["best_lr"] == 0.1
    jax32 = v.iloc[0]
    assert jax32["relative"] == 1.0 and jax32["best_lr"] == 0.01
    assert jax32["best_test_acc"] == pytest.approx(0.95)
    # alone at its batch size, and never pooled with batch 32
    assert v.iloc[2]["relative"] == 1.0
    assert v.iloc[2]["samples_per_s"] == pytest.approx(30_000)


def test_verdict_without_timings_uses_the_runs_own_figure(sweep):
    runs, _ = sweep
    runs = runs.assign(samples_per_s=[1000.0, 3000.0, 50.0, *[math.nan] * 8])
    v = an.analyse(runs, None, None).verdict
    assert list(v["backend"]) == ["numpy", "jax", "numpy"]  # no figure: last in its batch
    numpy32 = v.iloc[0]
    assert numpy32["samples_per_s"] == 2000.0  # ok runs only: the diverged one is left out
    assert numpy32["throughput_source"] == an.FROM_RUNS and math.isnan(numpy32["ci_low"])


def test_verdict_of_a_group_without_timed_blocks(sweep):
    runs, timings = sweep
    runs = pd.concat([runs, df([run("t0", ERROR, backend="torch", compile_s=math.nan)])])
    torch = an.analyse(runs, None, timings).verdict.iloc[2]
    assert torch["backend"] == "torch" and math.isnan(torch["samples_per_s"])
    assert torch["throughput_source"] == "" and torch["failed"] == 1
    assert torch["best_optimizer"] == "" and math.isnan(torch["compile_s"])


def test_the_verdict_compares_backends_on_the_seeds_all_of_them_ran():
    """numpy ran seeds 0, 1 and 2 (a sweep's [optimizer_seeds]), jax seed 0: every verdict
    figure of numpy is its seed 0's, as jax's is; the extra seeds are named, not pooled."""
    runs = df(
        [
            run("n0", final_test_acc=0.95, compile_s=0.2),
            run("n1", seed=1, final_test_acc=0.80, compile_s=0.2),
            run("n2", DIVERGED, seed=2, diverged_step=25, compile_s=0.2),
            run("j0", backend="jax", final_test_acc=0.95),
        ]
    )
    timings = df(
        blocks("n0", [1000, 1000])
        + blocks("n1", [10, 10])
        + blocks("n2", [10])
        + blocks("j0", [500])
    )
    a = an.analyse(runs, None, timings)
    v = a.verdict.set_index("backend")
    assert a.seeds == [0]
    assert (v.loc["numpy", "runs"], v.loc["numpy", "ok"], v.loc["numpy", "diverged"]) == (1, 1, 0)
    assert v.loc["numpy", "best_test_acc"] == pytest.approx(v.loc["jax", "best_test_acc"])
    assert v.loc["numpy", "samples_per_s"] == pytest.approx(1000) and v.loc["numpy", "blocks"] == 2
    assert a.by_batch.set_index("backend").loc["numpy", "timed_runs"] == 1
    assert a.seeds_left_out[["backend", "seeds", "runs"]].values.tolist() == [["numpy", [1, 2], 2]]
    # the learning-rate sensitivity keeps every seed
    assert a.means.set_index("backend").loc["numpy", "runs"] == 3
    # no seed shared: nothing left out, every run compared
    apart = runs.assign(seed=[0, 1, 2, 7])
    assert an.shared_seeds(apart) == [] and len(an.on_shared_seeds(apart)) == 4
    assert an.seeds_left_out(apart).empty and an.seeds_left_out(runs.iloc[:1]).empty


def test_the_best_config_is_chosen_by_validation_and_reports_its_test_accuracy():
    """As the optimizer verdict: the best mean validation accuracy among the lrs where no run
    diverged, its test accuracy shown; by test accuracy only where no validation was kept."""
    runs = df(
        [
            run("a", lr=0.1, final_val_acc=0.90, final_test_acc=0.95),
            run("b", lr=0.01, final_val_acc=0.93, final_test_acc=0.91),
            run("c", lr=0.3, final_val_acc=0.99, final_test_acc=0.99),
            run("d", DIVERGED, lr=0.3, seed=1, diverged_step=5),
        ]
    )
    best = an.analyse(runs, None, None).verdict.iloc[0]
    assert (best["best_lr"], best["best_chosen_by"]) == (0.01, an.BY_VALIDATION)
    assert best["best_test_acc"] == pytest.approx(0.91)
    assert best["best_val_acc"] == pytest.approx(0.93)
    old = an.analyse(runs.drop(columns="final_val_acc"), None, None).verdict.iloc[0]
    assert (old["best_lr"], old["best_chosen_by"]) == (0.1, an.BY_TEST)
    assert old["best_test_acc"] == pytest.approx(0.95)
    # every lr with a diverged run: the best of those that finished, rather than none
    worst = an.analyse(runs[runs["lr"] == 0.3], None, None).verdict.iloc[0]
    assert worst["best_lr"] == 0.3 and worst["best_test_acc"] == pytest.approx(0.99)


def test_empty_verdict():
    v = an.analyse(pd.DataFrame(columns=list(run("x"))), None, None).verdict
    assert v.empty and list(v.columns) == an.VERDICT_COLUMNS


def test_fastest_and_ranking():
    v = df(
        [
            {"batch_size": 32, "backend": "a", "samples_per_s": 10.0, "relative": 1.0},
            {"batch_size": 32, "backend": "b", "samples_per_s": 5.0, "relative": 0.5},
            {"batch_size": 32, "backend": "c", "samples_per_s": 1.0, "relative": 0.1},
            {"batch_size": 128, "backend": "a", "samples_per_s": 32.0, "relative": 0.8},
            {"batch_size": 128, "backend": "b", "samples_per_s": 40.0, "relative": 1.0},
            {"batch_size": 128, "backend": "c", "samples_per_s": math.nan, "relative": math.nan},
        ]
    ).assign(mode="compiled", compiler="jit", device="cpu")
    assert list(zip(*an.fastest(v)[["batch_size", "backend"]].to_dict("list").values())) == [
        (32, "a"),
        (128, "b"),
    ]
    r = an.ranking(v)
    assert list(r["backend"]) == ["a", "b", "c"]
    assert list(r["relative"]) == pytest.approx([0.8**0.5, 0.5**0.5, 0.1])


def test_ranking_takes_each_backend_at_its_fastest_path_and_names_it():
    """The verdict compares each backend's fastest measured path, eager included."""
    rows = [
        # (batch, backend, mode, compiler, samples/s)
        (32, "t", "eager", "eager", 9.0),
        (32, "t", "compiled", "inductor", 6.0),
        (32, "j", "compiled", "jit", 10.0),
        (128, "t", "eager", "eager", 20.0),
        (128, "t", "compiled", "inductor", 40.0),
        (128, "j", "compiled", "jit", 20.0),
    ]
    v = df(
        [dict(zip(["batch_size", "backend", "mode", "compiler", "samples_per_s"], r)) for r in rows]
    ).assign(device="cpu")
    v["relative"] = v["samples_per_s"] / v.groupby("batch_size")["samples_per_s"].transform("max")
    best = an.best_paths(v)
    assert list(zip(best["batch_size"], best["backend"], best["compiler"])) == [
        (32, "j", "jit"),
        (32, "t", "eager"),
        (128, "t", "inductor"),
        (128, "j", "jit"),
    ]
    r = an.ranking(v).set_index("backend")
    assert r.loc["t", "relative"] == pytest.approx(0.9**0.5)  # 0.9 at 32, 1.0 at 128
    assert r.loc["t", "paths"] == "eager, inductor"
    assert r.loc["j", "relative"] == pytest.approx(0.5**0.5)


def test_tflops_and_fraction_of_peak():
    assert an.tflops(1e6, 1e6) == pytest.approx(6.0)  # 6 flops per parameter per sample
    assert an.peak_of(["NVIDIA H100 80GB HBM3"]) == ("NVIDIA H100 80GB HBM3", 67.0)
    assert an.peak_of(["NVIDIA H200"])[1] == 67.0 and an.peak_of(["Tesla T4"]) is None
    runs = df(
        [
            run("g", device="gpu", samples_per_s=1e6, num_params=1e7),
            run("c", samples_per_s=1e6, num_params=1e7),
        ]
    )
    v = an.analyse(runs, None, None, gpus=["NVIDIA H200"]).verdict.set_index("device")
    assert v.loc["gpu", "tflops"] == pytest.approx(60.0)
    assert v.loc["gpu", "fraction_of_peak"] == pytest.approx(60 / 67)
    assert math.isnan(v.loc["cpu", "fraction_of_peak"])  # no peak for a CPU


def test_cold_starts_are_the_first_run_of_each_worker():
    runs = df(
        [
            run("a", worker_run_index=1, compile_s=3.0),
            run("b", worker_run_index=2, compile_s=0.1),
            run("c", backend="jax", worker_run_index=1, compile_s=math.nan),  # failed
        ]
    )
    assert an.cold_starts(runs).to_dict("records") == [
        {
            "backend": "numpy",
            "mode": "compiled",
            "compiler": "numpy",
            "device": "cpu",
            "compile_s": 3.0,
        }
    ]
    assert an.cold_starts(runs.drop(columns="worker_run_index")).empty


def test_first_step_reuse_is_told_from_the_later_runs():
    runs = df(
        [
            *(
                run(f"t{i}", backend="torch", worker_run_index=i, compile_s=c)
                for i, c in ((1, 3.0), (2, 0.002), (3, 0.004))
            ),
            *(
                run(f"j{i}", backend="jax", worker_run_index=i, compile_s=c)
                for i, c in ((1, 0.43), (2, 0.52), (3, 0.48))
            ),
            run("n1", worker_run_index=1, compile_s=0.0006),
            run("n2", worker_run_index=2, compile_s=0.0001),
            run("n3", ERROR, worker_run_index=3, compile_s=math.nan),
            run("x1", backend="tensorflow", worker_run_index=1, compile_s=0.6),
        ]
    )
    r = an.first_step_reuse(runs).set_index("backend")
    assert bool(r.loc["torch", "reused"]) and r.loc["torch", "later_s"] == pytest.approx(0.003)
    assert not r.loc["jax", "reused"] and r.loc["jax", "later_s"] == pytest.approx(0.5)
    assert not r.loc["numpy", "reused"]  # far shorter, but no compile to speak of
    assert r.loc["numpy", "later_runs"] == 1  # the failed run has no first step
    assert r.loc["tensorflow", "later_runs"] == 0 and math.isnan(r.loc["tensorflow", "later_s"])
    assert an.first_step_reuse(runs.drop(columns="worker_run_index")).empty


# --- accuracy and time to target -------------------------------------------------------


def test_choose_target():
    runs = df([run("a")])
    high = df(curve("a", [(10, 1.0, 0.5), (20, 2.0, 0.95)]))
    low = df(curve("a", [(10, 1.0, 0.5), (20, 2.0, 0.7)]))
    assert an.choose_target(runs, high) == (0.9, "a fixed 0.90")
    target, why = an.choose_target(runs, low)
    assert target == pytest.approx(0.6)  # 90% of 0.7, rounded down to 0.05
    assert why.startswith("0.60: no run reaches 0.90 (best 0.700)")
    assert an.choose_target(runs, low, 0.8) == (0.8, "set by the caller: 0.80")
    assert an.choose_target(runs, None)[0] == 0.9
    # a diverged run's accuracy does not count
    assert an.choose_target(df([run("a", DIVERGED)]), low)[0] == 0.9


def test_time_to_target():
    runs = df(
        [
            run("a0", lr=0.01),
            run("a1", lr=0.01, seed=1),
            run("b0", lr=0.1),
            run("b1", lr=0.1, seed=1),
            run("c0", DIVERGED, lr=0.3),
        ]
    )
    curves = df(
        curve("a0", [(10, 1.0, 0.5), (20, 1.5, 0.92)])
        + curve("a1", [(20, 1.5, 0.8), (40, 2.5, 0.91)])
        + curve("b0", [(10, 1.0, 0.95)])
        + curve("b1", [(10, 1.0, 0.5), (20, 2.0, 0.85)])  # never reaches 0.9
        + curve("c0", [(10, 1.0, 0.99)])
    )
    ttt = an.time_to_target(runs, curves, 0.9).set_index("lr")
    # the median over seeds, after the first step (compile_s 0.5)
    assert ttt.loc[0.01, "time_s"] == pytest.approx(1.5)  # (1.0 + 2.0) / 2
    assert ttt.loc[0.01, "step"] == 30
    assert math.isnan(ttt.loc[0.1, "time_s"]) and math.isnan(ttt.loc[0.1, "step"])
    assert 0.3 not in ttt.index  # diverged runs have no time to target
    assert an.time_to_target(runs, None, 0.9).empty


# --- learning rates --------------------------------------------------------------------


def means(rows: list[tuple]) -> pd.DataFrame:
    """config_means rows from (backend, optimizer, lr, batch, runs, ok, diverged, acc)."""
    cols = ["backend", "optimizer", "lr", "batch_size", "runs", "ok", "diverged", "acc"]
    return df([dict(zip(cols, r)) for r in rows]).assign(
        mode="compiled", compiler="c", device="cpu", dataset="digits"
    )


def test_stable_lrs():
    m = means(
        [
            ("numpy", "sgd", 0.1, 32, 2, 2, 0, 0.9),
            ("numpy", "sgd", 0.3, 32, 2, 2, 0, 0.9),  # the largest lr tried: "≥ 0.3"
            ("numpy", "sgd", 0.1, 128, 2, 2, 0, 0.9),
            ("numpy", "sgd", 0.3, 128, 2, 1, 1, 0.9),  # one seed diverged: not stable
            ("numpy", "sgd", 0.1, 512, 2, 0, 2, math.nan),
            ("numpy", "sgd", 0.3, 512, 2, 0, 2, math.nan),
            ("jax", "sgd", 0.1, 32, 2, 2, 0, 0.9),
            ("jax", "sgd", 0.3, 32, 2, 0, 2, math.nan),
            ("jax", "sgd", 0.1, 128, 2, 0, 0, math.nan),  # failed: no run finished
            ("jax", "sgd", 0.3, 128, 2, 0, 0, math.nan),
            ("jax", "sgd", 0.1, 512, 2, 0, 2, math.nan),
            ("jax", "sgd", 0.3, 512, 2, 0, 2, math.nan),
        ]
    )
    table = an.stable_lrs(m).set_index("backend")
    assert list(table.loc["numpy", ["batch 32", "batch 128", "batch 512"]]) == [
        "≥ 0.3",
        "0.1",
        "none",
    ]
    assert list(table.loc["jax", ["batch 32", "batch 128", "batch 512"]]) == ["0.1", "-", "none"]
    # batch 128: "-" is no opinion; batch 512: both "none"
    assert an.stable_lr_splits(table.reset_index()) == [("sgd", "batch 32")]
    one = an.stable_lrs(m[m["backend"] == "numpy"])
    assert an.stable_lr_splits(one) is None  # nothing to compare
    assert an.stable_lrs(m.iloc[0:0]).empty


def test_convergence_lrs_prefer_calm_learning_rates():
    m = means(
        [
            ("numpy", "sgd", 0.1, 32, 1, 1, 0, 0.80),
            ("jax", "sgd", 0.1, 32, 1, 1, 0, 0.82),
            ("numpy", "sgd", 0.3, 32, 1, 1, 0, 0.95),  # better, but jax diverged at 0.3
            ("jax", "sgd", 0.3, 32, 1, 0, 1, math.nan),
            ("numpy", "adam", 0.001, 32, 1, 1, 0, 0.9),  # a tie: the smaller lr
            ("numpy", "adam", 0.01, 32, 1, 1, 0, 0.9),
            ("numpy", "sgd", 0.1, 128, 1, 1, 1, 0.7),  # every lr diverged somewhere
            ("numpy", "sgd", 0.3, 128, 1, 1, 1, 0.8),
            ("numpy", "adam", 0.001, 128, 1, 0, 0, math.nan),  # no run finished
        ]
    )
    assert an.convergence_lrs(m) == {
        ("digits", "adam", 32): 0.001,
        ("digits", "sgd", 32): 0.1,
        ("digits", "sgd", 128): 0.3,
    }
    # another data set is another panel, never pooled with the first
    two = pd.concat([m, m.assign(dataset="mnist", acc=m["acc"] - 0.1)])
    assert set(an.convergence_lrs(two)) == {
        (ds, o, b)
        for ds in ("digits", "mnist")
        for o, b in (("adam", 32), ("sgd", 32), ("sgd", 128))
    }


# --- problems and workers --------------------------------------------------------------


def test_problems():
    runs = df(
        [
            run("a"),
            run("b", SKIPPED, error="torch is not installed"),
            run("c", DIVERGED, diverged_step=23),
            run("d", ERROR, error="RuntimeError: boom"),
        ]
    )
    p = an.problems(runs)
    assert list(p["status"]) == [DIVERGED, ERROR, SKIPPED]
    assert list(p["message"]) == [
        "loss blew up at step 23",
        "RuntimeError: boom",
        "torch is not installed",
    ]
    assert an.problems(runs.iloc[:1]).empty


def test_identical_problems_are_grouped_with_the_end_of_their_traceback():
    tb = "Traceback (most recent call last):\n  File 'x.py', line 3, in f\n    g()\nRuntimeError: boom\n"
    runs = df(
        [
            run(r, ERROR, error="RuntimeError: boom", traceback=tb, seed=i)
            for i, r in enumerate("abcd")
        ]
        + [run("e", SKIPPED, error="no gpu visible to numpy here")]
    )
    groups = an.problem_groups(an.problems(runs))
    assert list(groups["runs"]) == [4, 1]
    assert (
        groups["first runs"].iloc[0].endswith("; ...")
        and groups["first runs"].iloc[0].count(";") == 3
    )
    frames = groups["last_frames"].iloc[0].splitlines()
    assert frames[-2:] == ["    g()", "RuntimeError: boom"] and len(frames) == 4
    assert groups["last_frames"].iloc[1] == ""


def test_backends_as_run_are_reported_by_finished_runs():
    runs = df(
        [
            run("a", ERROR, framework_version=""),
            run("b", framework_version="2.0"),
            run("c", backend="jax", framework_version="0.4"),
        ]
    )
    assert an.backends_as_run(runs)[["backend", "framework_version"]].values.tolist() == [
        ["jax", "0.4"],
        ["numpy", "2.0"],
    ]


# --- compare ---------------------------------------------------------------------------

BY = [*an.GROUP, "optimizer", "batch_size"]


def _rates(rids: list[str], scale: float, seed: int, backend: str = "numpy") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return df(
        [
            {"run_id": rid, **dict(zip(BY, (backend, "compiled", "cpu", "sgd", 32))), "rate": r}
            for rid in rids
            for r in rng.normal(1000 * scale, 10 * scale, 20)
        ]
    )


@pytest.mark.parametrize(
    ("scale", "verdict"),
    [(0.5, change.SLOWER), (2.0, change.FASTER), (1.0, change.SAME), (0.97, change.SAME)],
)
def test_throughput_change(scale, verdict):
    runs = df([run(r) for r in ("a", "b", "c")])
    base = _rates(["a", "b", "c"], 1.0, seed=0)
    cur = _rates(["a", "b", "c"], scale, seed=1)
    (row,) = change.throughput_change(runs, base, cur, BY, threshold=0.05).to_dict("records")
    assert row["verdict"] == verdict and row["runs"] == 3
    assert row["ratio"] == pytest.approx(scale, rel=0.02)
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
    assert row["baseline_samples_per_s"] == pytest.approx(1000, rel=0.02)


def test_throughput_change_without_timings():
    runs = df([run("a"), run("b", backend="jax")])
    base = _rates(["a"], 1.0, seed=0)
    cur = pd.concat([_rates(["a"], 1.0, seed=1), _rates(["b"], 1.0, seed=2, backend="jax")])
    out = change.throughput_change(runs, base, cur, BY, threshold=0.05).set_index("backend")
    assert out.loc["jax", "verdict"] == change.NO_TIMINGS and math.isnan(out.loc["jax", "ratio"])
    assert out.loc["numpy", "verdict"] == change.SAME


# --- disagreement and noise ------------------------------------------------------------


def test_disagreeing_cells_are_flagged_with_the_reason():
    runs = df(
        [
            # lr 0.1: backends 4 points apart, seeds within each 0.2: chaos, not noise
            run("a0", final_test_acc=0.90, lr=0.1),
            run("a1", final_test_acc=0.902, lr=0.1, seed=1),
            run("b0", backend="jax", final_test_acc=0.94, lr=0.1),
            run("b1", backend="jax", final_test_acc=0.942, lr=0.1, seed=1),
            # lr 0.3: one run diverged
            run("c0", final_test_acc=0.80, lr=0.3),
            run("d0", backend="jax", final_test_acc=0.70, lr=0.3),
            run("d1", DIVERGED, backend="jax", lr=0.3, seed=1, diverged_step=7.0),
            # lr 0.01: seeds differ as much as backends
            run("e0", final_test_acc=0.80, lr=0.01),
            run("e1", final_test_acc=0.86, lr=0.01, seed=1),
            run("f0", backend="jax", final_test_acc=0.84, lr=0.01),
            # lr 0.03: agree within 0.5 points: not flagged
            run("g0", final_test_acc=0.91, lr=0.03),
            run("h0", backend="jax", final_test_acc=0.913, lr=0.03),
        ]
    )
    d = an.disagreements(runs).set_index("lr")
    assert sorted(d.index) == [0.01, 0.1, 0.3]
    assert d.loc[0.1, "backend_spread"] == pytest.approx(0.04)
    assert d.loc[0.1, "reason"].startswith("float rounding amplified by a chaotic trajectory")
    assert d.loc[0.3, "reason"] == "at the edge of stability: 1 of 3 runs diverged"
    assert d.loc[0.01, "reason"].startswith("within seed-to-seed noise")
    spread = an.cell_spread(runs).set_index("lr")
    assert spread.loc[0.01, "spread"] == pytest.approx(0.06)  # every ok run of the cell


def test_overlapping_intervals_are_not_separable_and_wide_ones_noisy():
    v = df(
        [
            {"batch_size": 32, "samples_per_s": 100.0, "ci_low": 90.0, "ci_high": 110.0},
            {"batch_size": 32, "samples_per_s": 95.0, "ci_low": 85.0, "ci_high": 105.0},
            {"batch_size": 32, "samples_per_s": 50.0, "ci_low": 45.0, "ci_high": 55.0},
            {"batch_size": 128, "samples_per_s": 100.0, "ci_low": 95.0, "ci_high": 105.0},
            {"batch_size": 128, "samples_per_s": 10.0, "ci_low": 5.0, "ci_high": 20.0},
        ]
    )
    assert frameworks._separable(v).tolist() == [False, False, True, True, True]
    runs = df([run("a", samples_per_s=100.0), run("b", backend="jax", samples_per_s=99.0)])
    timings = df(blocks("a", [40.0, 200.0] * 4) + blocks("b", [99.0, 100.0] * 4))
    v = an.analyse(runs, None, timings).verdict.set_index("backend")
    assert bool(v.loc["numpy", "noisy"]) and not bool(v.loc["jax", "noisy"])


def test_a_robust_paired_ratio_shrugs_off_one_hiccup():
    """One pair of runs where one run was hit by a hiccup (5x slower) moves the mean of 12
    pairs by over 10%; the median pair's change, which the re-measurement uses, hardly."""
    rng = np.random.default_rng(0)
    base = [rng.normal(100, 2, 10) for _ in range(12)]
    cur = [b * rng.normal(1, 0.02, 10) for b in base]
    cur[3] = cur[3] / 5
    mean, _, _ = stats.paired_ratio(base, cur)
    robust, lo, hi = stats.paired_ratio(base, cur, robust=True, level=0.99)
    assert mean < 0.9
    assert robust == pytest.approx(1.0, abs=0.02) and lo < 1 < hi


def test_the_round_ratio_cancels_the_machines_drift_and_its_hiccups():
    """Two variants in interleaved rounds, a 10% real difference, the machine's speed
    wandering 2x from round to round, one round 5x slow on one side only, and each instance
    its own placement luck (+-3%): the ratio recovers 1.10, its interval holds it, and the
    fastest-round ratio of one instance pair has no such guarantee."""
    rng = np.random.default_rng(1)
    rounds, instances = 30, 4
    machine = np.exp(np.cumsum(rng.normal(0, 0.15, rounds)))  # drift over the rounds
    machine = 1 + (machine - machine.min()) / (machine.max() - machine.min())  # 1x to 2x
    b = [machine * rng.normal(1, 0.01, rounds) * rng.normal(1, 0.03) for _ in range(instances)]
    a = [
        1.10 * machine * rng.normal(1, 0.01, rounds) * rng.normal(1, 0.03) for _ in range(instances)
    ]
    a[0] = a[0].copy()
    a[0][7] *= 5  # a hiccup in one round
    ratio, lo, hi = stats.round_ratio(a, b)
    assert ratio == pytest.approx(1.10, abs=0.03) and lo < 1.10 < hi
    assert hi - lo < 0.1
    # one pair alone carries its instances' luck, which more pairs average out
    alone = [stats.round_ratio([x], [y])[0] for x, y in zip(a, b)]
    assert max(alone) - min(alone) > abs(ratio - 1.10)
    assert math.isnan(stats.round_ratio([], [])[0])
