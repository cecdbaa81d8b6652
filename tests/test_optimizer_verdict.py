"""The optimizer verdict (benchmarks.report.optimizers) on small hand-built tables, and its
sections on the page (no framework runs here)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks.record.schema import Status
from benchmarks.report import analysis as an
from benchmarks.report import optimizers as opt
from benchmarks.report import write_report
from benchmarks.report.sections import optimizers as section
from tests.synthetic_results import make_results

OK, DIVERGED, ERROR = Status.OK.value, Status.DIVERGED.value, Status.ERROR.value


def run(rid: str, status: str = OK, **kw) -> dict:
    """A runs.parquet row: numpy/compiled/cpu spec, digits, adam lr 0.001, batch 32, seed 0."""
    return {
        "run_id": rid,
        "backend": "numpy",
        "mode": "compiled",
        "compiler": "numpy",
        "device": "cpu",
        "dataset": "digits",
        "optimizer": "adam",
        "schedule": "constant",
        "variant": "spec",
        "lr": 0.001,
        "batch_size": 32,
        "seed": 0,
        "status": status,
        "error": "",
        "diverged_step": 7.0 if status == DIVERGED else math.nan,
        "compile_s": 0.0,
        "final_val_acc": math.nan,
        "final_test_acc": math.nan,
        "final_test_loss": math.nan,
        **kw,
    }


def ok(rid: str, val: float, test: float, **kw) -> dict:
    return run(rid, final_val_acc=val, final_test_acc=test, final_test_loss=1 - test, **kw)


def df(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def val_curve(rid: str, points: list[tuple[int, float, float]], **extra) -> list[dict]:
    """Curve rows (step, wall_s, val_acc)."""
    return [
        {"run_id": rid, "step": s, "wall_s": w, "val_acc": a, "train_loss": 1 - a, **extra}
        for s, w, a in points
    ]


def verdict_of(runs: pd.DataFrame, curves=None, **kw) -> pd.DataFrame:
    return opt.analyse_optimizers(runs, curves, **kw).verdict.set_index(opt.KEY)


def row(v: pd.DataFrame, optimizer: str = "adam", batch: int = 32, ds: str = "digits") -> dict:
    return v.loc[(ds, batch, optimizer, "constant")].to_dict()


# --- the best learning rate ------------------------------------------------------------


def test_best_lr_is_chosen_by_validation_not_test():
    runs = df(
        [
            ok("a", val=0.90, test=0.95, lr=0.001),  # the best test accuracy: never the choice
            ok("b", val=0.93, test=0.91, lr=0.01),
            ok("c", val=0.80, test=0.80, lr=0.1),
        ]
    )
    r = row(verdict_of(runs))
    assert r["best_lr"] == 0.01 and r["best_lr_note"] == ""
    assert r["val_acc"] == pytest.approx(0.93)
    assert r["test_acc"] == pytest.approx(0.91)  # reported at the chosen lr


def test_a_diverged_seed_takes_an_lr_out_of_the_running():
    runs = df(
        [
            ok("a0", val=0.90, test=0.90, lr=0.01),
            ok("b0", val=0.99, test=0.99, lr=0.1),  # the best mean of its ok seeds...
            run("b1", DIVERGED, lr=0.1, seed=1),  # ...but a seed diverged
        ]
    )
    r = row(verdict_of(runs))
    assert r["best_lr"] == 0.01 and r["best_lr_note"] == opt.SMALLEST
    assert r["stable_lr"] == 0.01 and r["stable_note"] == ""


def test_the_interval_is_the_min_max_over_seeds():
    runs = df(
        [
            ok("a0", val=0.91, test=0.90),
            ok("a1", val=0.92, test=0.92, seed=1),
            ok("a2", val=0.93, test=0.95, seed=2),
            run("a3", ERROR, seed=3),  # a failed run is no seed
        ]
    )
    r = row(verdict_of(runs))
    assert r["test_acc"] == pytest.approx((0.90 + 0.92 + 0.95) / 3)
    assert (r["test_low"], r["test_high"]) == (0.90, 0.95)
    assert r["seeds"] == 3 and r["interval_note"] == "min-max over 3 seeds"
    assert (r["ok"], r["failed"]) == (3, 1)


def test_one_seed_and_one_learning_rate_cannot_conclude():
    r = row(verdict_of(df([ok("a", val=0.9, test=0.88)])))
    assert r["best_lr"] == 0.001 and r["best_lr_note"] == opt.ONLY_ONE
    assert math.isnan(r["test_low"]) and r["interval_note"] == opt.ONE_SEED
    assert math.isnan(r["decades"]) and r["robust_note"] == opt.ONE_LR
    shown = section.display(verdict_of(df([ok("a", val=0.9, test=0.88)])).reset_index()).iloc[0]
    assert shown["best lr"] == "0.001 (the only one)"
    assert shown["test acc"] == "0.880 (one seed: no interval)"
    assert shown[section.ROBUST] == "cannot conclude (one learning rate)"


def test_no_validation_accuracy_chooses_nothing():
    runs = df([run("a", final_test_acc=0.9), run("b", lr=0.01, final_test_acc=0.95)])
    oa = opt.analyse_optimizers(runs, None)
    r = oa.verdict.iloc[0]
    assert math.isnan(r["best_lr"]) and r["best_lr_note"] == opt.NO_VAL
    assert "no validation accuracy" in oa.missing[0] and oa.ratios.empty
    assert oa.recommended.iloc[0]["optimizer"] == ""


def test_every_lr_diverged():
    runs = df([run("a", DIVERGED), run("b", DIVERGED, lr=0.01)])
    r = verdict_of(runs).iloc[0]
    assert math.isnan(r["best_lr"]) and r["best_lr_note"] == opt.ALL_DIVERGED
    assert math.isnan(r["stable_lr"]) and r["stable_note"] == opt.NONE_STABLE


# --- robustness and stability ----------------------------------------------------------


GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def test_robustness_in_decades_on_a_known_grid():
    vals = [0.80, 0.90, 0.935, 0.94, 0.932, 0.92, 0.50]
    runs = df([ok(f"r{i}", val=v, test=v, lr=lr) for i, (lr, v) in enumerate(zip(GRID, vals))])
    r = row(verdict_of(runs))
    assert r["best_lr"] == 3e-3
    # within 0.01 of 0.94: 1e-3 and 1e-2 (not 3e-4 at 0.90, not 3e-2 at 0.92)
    assert (r["robust_low"], r["robust_high"]) == (1e-3, 1e-2)
    assert r["decades"] == pytest.approx(1.0) and r["robust_note"] == ""
    assert section.display(verdict_of(runs).reset_index()).iloc[0][section.ROBUST] == (
        "1.0 (0.001-0.01)"
    )
    # a wider tolerance reaches the grid's top edge: at least that wide
    r = row(verdict_of(runs, tolerance=0.05))
    assert (r["robust_low"], r["robust_high"]) == (3e-4, 3e-2)
    assert r["decades"] == pytest.approx(2.0)
    r = row(verdict_of(runs, tolerance=0.5))
    assert r["decades"] == pytest.approx(3.0) and r["robust_note"] == opt.AT_EDGE
    assert section._robust(r) == "≥ 3.0 decades (0.0001-0.1, grid edge)"


def test_a_diverged_lr_ends_the_robust_range():
    vals = [0.93, 0.935, 0.94, 0.94]
    rows = [ok(f"r{i}", val=v, test=v, lr=lr) for i, (lr, v) in enumerate(zip(GRID, vals))]
    rows.append(run("d", DIVERGED, lr=3e-4, seed=1))  # a seed of the second lr diverged
    r = row(verdict_of(df(rows)))
    assert r["best_lr"] == 1e-3  # the tie goes to the smaller lr
    assert (r["robust_low"], r["robust_high"]) == (1e-3, 3e-3)
    assert r["decades"] == pytest.approx(math.log10(3)) and r["robust_note"] == opt.AT_EDGE


def test_largest_stable_lr_with_a_diverged_seed():
    runs = df(
        [
            ok("a", val=0.90, test=0.9, lr=0.01),
            ok("b", val=0.91, test=0.9, lr=0.1),
            ok("c0", val=0.92, test=0.9, lr=0.3),
            run("c1", DIVERGED, lr=0.3, seed=1),  # one seed of two diverged: not stable
            run("d", DIVERGED, lr=1.0),
        ]
    )
    r = row(verdict_of(runs))
    assert r["stable_lr"] == 0.1 and r["stable_note"] == ""
    assert r["best_lr"] == 0.1 and r["diverged"] == 2
    stable = row(verdict_of(runs[runs["lr"] < 0.3]))
    assert stable["stable_lr"] == 0.1 and stable["stable_note"] == opt.STABLE_EDGE
    assert (
        section.display(verdict_of(runs[runs["lr"] < 0.3]).reset_index()).iloc[0][
            "largest stable lr"
        ]
        == "≥ 0.1"
    )


# --- the target and the time to it ----------------------------------------------------


def test_time_to_target_is_the_median_over_seeds_and_says_who_did_not_reach_it():
    runs = df([ok(f"s{i}", val=0.95, test=0.95, seed=i, compile_s=0.5) for i in range(3)])
    curves = df(
        val_curve("s0", [(0, 0.0, 0.1), (20, 2.5, 0.92)])  # 2.0 s after the first step
        + val_curve("s1", [(0, 0.0, 0.1), (20, 2.5, 0.85), (40, 4.5, 0.91)])  # 4.0 s
        + val_curve("s2", [(0, 0.0, 0.1), (20, 2.5, 0.85), (40, 4.5, 0.88)])  # never
    )
    r = row(verdict_of(runs, curves, targets={"digits": 0.9}))
    assert r["target"] == 0.9 and r["target_source"] == opt.TARGET_SET
    assert (r["reached"], r["target_seeds"]) == (2, 3)
    assert r["time_s"] == pytest.approx(4.0) and r["steps"] == 40  # median of 2, 4, never
    assert r["reach_note"] == "reached by 2 of 3 seeds"
    # most seeds never get there: not reached
    r = row(verdict_of(runs, curves, targets={"digits": 0.915}))
    assert r["time_s"] == math.inf and r["reached"] == 1
    assert (
        section.display(verdict_of(runs, curves, targets={"digits": 0.915}).reset_index()).iloc[0][
            "time"
        ]
        == "not reached"
    )


def test_time_to_target_is_at_the_runs_steady_step_time_not_a_stall():
    """A run whose training clock took a stall (a busy shared machine) is timed at its
    median step time: steps x batch / samples_per_s."""
    runs = df(
        [ok("s0", val=0.95, test=0.95, samples_per_s=3200.0)]  # batch 32: 10 ms a step
    )
    curves = df(val_curve("s0", [(0, 0.0, 0.1), (20, 9.0, 0.92)]))  # 9 s on the clock: a stall
    r = row(verdict_of(runs, curves, targets={"digits": 0.9}))
    assert r["steps"] == 20 and r["time_s"] == pytest.approx(0.2)


def test_the_target_rule_and_the_sweeps_targets():
    runs = df(
        [
            ok("a", val=1.0, test=0.9),
            ok("b", val=0.944, test=0.9, optimizer="sgd"),
            ok("c", val=0.8, test=0.8, dataset="mnist"),
        ]
    )
    t = opt.analyse_optimizers(runs, None, targets={"mnist": 0.75}).targets.set_index("dataset")
    assert t.loc["digits", "target"] == 0.97  # 0.97 x 1.0, exactly (no float floor slip)
    assert t.loc["digits", "source"].startswith("0.97 x the best mean validation accuracy (1.000)")
    assert t.loc["mnist", "target"] == 0.75 and t.loc["mnist", "source"] == opt.TARGET_SET
    t = opt.choose_targets(pd.DataFrame({"dataset": ["d"], "val_acc": [0.944]}))
    assert t.iloc[0]["target"] == 0.915  # 0.91568, rounded down to 0.005


def test_the_verdict_series_has_the_most_seeds_then_the_registrys_order():
    def rows(backend: str, seeds: range) -> list[dict]:
        return [ok(f"{backend}{s}", val=0.9, test=0.9, backend=backend, seed=s) for s in seeds]

    series, why = opt.verdict_series(df(rows("numpy", range(3)) + rows("jax", range(1))))
    assert series["backend"] == "numpy" and why.startswith("3 seed(s) per configuration")
    series, _ = opt.verdict_series(df(rows("numpy", range(1)) + rows("jax", range(3))))
    assert series["backend"] == "jax"
    series, why = opt.verdict_series(df(rows("jax", range(1)) + rows("numpy", range(1))))
    assert series["backend"] == "numpy" and "registry's order decides" in why
    stock = [ok("t", val=0.9, test=0.9, backend="torch", variant="stock", seed=s) for s in range(5)]
    series, _ = opt.verdict_series(df(rows("jax", range(1)) + stock))
    assert series["backend"] == "jax"  # stock runs never give the verdict


def test_recommendation_prefers_the_faster_of_two_within_the_tolerance():
    runs = df(
        [
            ok("a", val=0.950, test=0.95),
            ok("s", val=0.945, test=0.94, optimizer="sgd", lr=0.1),
            ok("r", val=0.900, test=0.90, optimizer="rmsprop"),
        ]
    )
    curves = df(
        val_curve("a", [(10, 1.0, 0.5), (20, 2.0, 0.95)])
        + val_curve("s", [(10, 1.0, 0.95)])
        + val_curve("r", [(10, 0.5, 0.95)])  # fastest, but 0.05 below the best: not a candidate
    )
    rec = opt.analyse_optimizers(runs, curves, targets={"digits": 0.9}).recommended
    r = rec.iloc[0]
    assert r["optimizer"] == "sgd" and r["reason"] == opt.FASTEST_NEAR
    assert (r["best_val_optimizer"], r["near"], r["compared"]) == ("adam", 2, 3)
    why = section.recommendations(rec, opt.TOLERANCE, section.namer(rec)).iloc[0]["why"]
    assert why.startswith("lr 0.1, test acc 0.940 (one seed: no interval), target 0.900 reached")
    assert why.endswith(
        "the fastest to the target of the 2 optimizers within 0.01 of the best "
        "validation accuracy (adam's), by more than the tie margin (80%); runner-up adam: "
        "2.00x the time to the target"
    )
    rec = opt.analyse_optimizers(runs, curves, targets={"digits": 0.9}, tolerance=0.001)
    assert rec.recommended.iloc[0]["optimizer"] == "adam"
    assert rec.recommended.iloc[0]["reason"] == opt.BEST_VAL


def _verdict(*solvers: tuple[str, float, float, float]) -> pd.DataFrame:
    """One workload's verdict rows: (optimizer, val_acc, steps, time_s) each."""
    return pd.DataFrame(
        [
            {"dataset": "digits", "batch_size": 128, "optimizer": o, "schedule": "constant",
             "val_acc": v, "steps": n, "time_s": t}
            for o, v, n, t in solvers
        ]
    )  # fmt: skip


def test_times_within_the_tie_margin_are_a_tie_that_steps_then_accuracy_decide():
    # 10% apart in time: within the margin; rmsprop needs fewer steps
    r = opt.recommend(_verdict(("adam", 0.95, 100, 1.00), ("rmsprop", 0.948, 75, 1.10))).iloc[0]
    assert (r["optimizer"], r["reason"]) == ("rmsprop", opt.TIED_STEPS)
    assert r["tied"] == [("rmsprop", "constant"), ("adam", "constant")]
    assert r["runner_up"] == ("adam", "constant") and r["margin"] == "25 more steps to the target"
    # as many steps: the better validation accuracy
    r = opt.recommend(_verdict(("adam", 0.95, 75, 1.00), ("rmsprop", 0.948, 75, 1.10))).iloc[0]
    assert (r["optimizer"], r["reason"]) == ("adam", opt.TIED_VAL)
    # nothing separates them (adam and adamw without decay: the same math): any of the two
    v = _verdict(("adamw", 0.95, 75, 1.00), ("adam", 0.95, 75, 1.12), ("sgd", 0.949, 200, 3.0))
    rec = opt.recommend(v)
    r = rec.iloc[0]
    assert r["reason"] == opt.ANY_OF and r["any_of"] == [
        ("adam", "constant"),
        ("adamw", "constant"),
    ]
    shown = section.recommendations(rec.assign(**_blank_figures()), 0.01, lambda o, s: o).iloc[0]
    assert shown["use"] == "any of adam, adamw" and shown["rule"] == "tie"
    assert "nothing separates them" in shown["why"]
    # beyond the margin the time decides, and the runner-up's margin is its time ratio
    slow = 1 + opt.TIE_MARGIN + 0.2
    v = _verdict(("adam", 0.95, 75, 1.00), ("rmsprop", 0.948, 50, slow))
    r = opt.recommend(v).iloc[0]
    assert (r["optimizer"], r["reason"]) == ("adam", opt.FASTEST_NEAR)
    assert r["margin"] == f"{slow:.2f}x the time to the target" and r["tied"] == []


def _blank_figures() -> dict:
    return {
        "best_lr": 0.01, "test_acc": 0.95, "test_low": math.nan, "test_high": math.nan,
        "interval_note": "", "target": 0.9, "decades": math.nan, "robust_note": "",
    }  # fmt: skip


def test_the_recommendation_does_not_flip_on_time_noise_within_the_margin():
    """Two sweeps of one commit differ only in the clock: every draw of each time within the
    margin's half either way gives the same pick (the bug: rmsprop in one sweep, adagrad in
    the next, at MNIST-5k batch 128)."""
    import numpy as np

    rng = np.random.default_rng(0)
    noise = 0.25  # each time up to 25% off (a run's median change between two sweeps: 24%)
    assert (1 + noise) / (1 - noise) < 1 + opt.TIE_MARGIN
    base = [("rmsprop", 0.95, 100, 1.00), ("adagrad", 0.946, 125, 1.05), ("sgd", 0.90, 50, 0.5)]
    picks = set()
    for _ in range(200):
        noisy = [(o, v, n, t * rng.uniform(1 - noise, 1 + noise)) for o, v, n, t in base]
        picks.add(opt.recommend(_verdict(*noisy)).iloc[0]["optimizer"])
    assert picks == {"rmsprop"}


# --- performance profiles --------------------------------------------------------------


def test_performance_profile_on_a_hand_made_example():
    inf = math.inf
    times = {  # (dataset, batch) -> optimizer -> time to target
        ("d", 32): {"A": 1.0, "B": 2.0},
        ("d", 128): {"A": 2.0, "B": 2.0},
        ("e", 32): {"A": inf, "B": 3.0},
        ("e", 128): {"A": inf, "B": math.nan},  # nobody reached it (NaN: no best lr)
        ("f", 32): {"B": 1.0},  # A did not run here
    }
    v = df(
        [
            {"dataset": d, "batch_size": b, "optimizer": o, "schedule": "constant", "time_s": t}
            for (d, b), per in times.items()
            for o, t in per.items()
        ]
    )
    ratios = opt.profile_ratios(v)
    r = ratios.set_index(["dataset", "batch_size", "optimizer"])["ratio"]
    assert r[("d", 32, "A")] == 1 and r[("d", 32, "B")] == 2 and r[("d", 128, "B")] == 1
    assert r[("e", 32, "A")] == inf and r[("e", 32, "B")] == 1
    assert r[("e", 128, "A")] == inf and r[("e", 128, "B")] == inf
    assert r[("f", 32, "A")] == inf and len(ratios) == 10
    p = opt.performance_profile(ratios).set_index("optimizer")
    assert p.loc["A", ["rho_1", "rho_1.5", "rho_2", "rho_4"]].tolist() == [0.4, 0.4, 0.4, 0.4]
    assert p.loc["B", ["rho_1", "rho_1.5", "rho_2", "rho_4"]].tolist() == [0.6, 0.6, 0.8, 0.8]
    # the area under rho over [1, 4] / 3: each workload adds max(0, 4 - ratio)
    assert p.loc["A", "score"] == pytest.approx((3 + 3) / 5 / 3)
    assert p.loc["B", "score"] == pytest.approx((2 + 3 + 3 + 3) / 5 / 3)
    assert list(p.index) == ["B", "A"] and p.loc["A", "solved"] == 2
    assert opt.profile_ratios(v.assign(time_s=math.nan)).empty  # no curves: no profile


# --- backends and stock ----------------------------------------------------------------


def test_disagreement_is_flagged_per_data_set_at_the_best_lr():
    runs = df(
        [
            # digits: the backends agree; mnist (a harder set): 4 points apart
            ok("n", val=0.95, test=0.950),
            ok("j", val=0.95, test=0.952, backend="jax"),
            ok("nm", val=0.85, test=0.850, dataset="mnist"),
            ok("jm", val=0.89, test=0.890, dataset="mnist", backend="jax"),
            ok("ns", val=0.80, test=0.800, dataset="mnist", lr=0.01),
            # a stock run differs by design: never a disagreement
            ok("st", val=0.70, test=0.700, backend="jax", variant="stock"),
        ]
    )
    d = opt.analyse_optimizers(runs, None).agreement
    assert list(d["dataset"]) == ["mnist"] and d.iloc[0]["backend_spread"] == pytest.approx(0.04)
    assert bool(d.iloc[0]["at_best"])  # lr 0.001 is mnist adam's best on the verdict backend
    assert an.cell_spread(runs).set_index("dataset").loc["digits", "backends"] == 2


def test_stock_drift_on_a_hand_made_pair():
    runs = df(
        [
            ok("s0", val=0.90, test=0.90),
            ok("s1", val=0.96, test=0.96, seed=1),  # not a seed the stock runs used
            ok("t0", val=0.88, test=0.87, backend="torch", compiler="eager", variant="stock"),
            ok("x0", val=0.85, test=0.85, backend="jax", compiler="jit", variant="stock"),
            ok("t2", val=0.5, test=0.5, backend="torch", variant="stock", lr=0.01),  # not best lr
        ]
    )
    curves = df(
        val_curve("s0", [(0, 0.0, 0.5), (10, 1.0, 0.8), (20, 2.0, 0.9)])
        + val_curve("s1", [(0, 0.0, 0.5), (10, 1.0, 0.9), (20, 2.0, 0.96)])
        + val_curve("t0", [(0, 0.0, 0.5), (10, 1.0, 0.7), (20, 2.0, 0.88)])
        + val_curve("x0", [(0, 0.0, 0.5), (10, 1.0, 0.75), (20, 2.0, 0.85)])
    )
    oa = opt.analyse_optimizers(runs, curves)
    assert oa.stock_runs == 3
    d = oa.drift.set_index("backend")
    assert set(d.index) == {"torch", "jax"} and (d["lr"] == 0.001).all()
    # against the spec run of the same seed (0): 0.90, not the mean over seeds 0 and 1
    assert d.loc["torch", "spec_acc"] == pytest.approx(0.90)
    assert d.loc["torch", "acc_diff"] == pytest.approx(-0.03)
    assert d.loc["torch", "gap"] == pytest.approx(0.1) and d.loc["torch", "gap_step"] == 10
    assert d.loc["torch", "gap_metric"] == "val_acc"
    assert d.loc["jax", "acc_diff"] == pytest.approx(-0.05)
    assert d["stock_spread"].tolist() == pytest.approx([0.02, 0.02])
    drawn = oa.drift_curves
    assert set(drawn["line"]) == {"spec", "stock"}
    assert len(drawn[drawn["line"] == "spec"]) == 3  # the spec curve once per panel
    # without validation curves, the training loss
    no_val = curves.assign(val_acc=math.nan)
    d = opt.analyse_optimizers(runs, no_val).drift.set_index("backend")
    assert (d["gap_metric"] == "train_loss").all()
    assert opt.analyse_optimizers(runs[runs["variant"] == "spec"], curves).drift.empty


# --- on the page -----------------------------------------------------------------------


def section_of(md: str, title: str) -> str:
    return md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_report_shows_the_optimizer_verdict(tmp_path):
    folder = make_results(
        tmp_path / "new",
        backends=("numpy", "jax"),
        optimizers={"adam": [0.001, 0.01]},
        batch_sizes=(32,),
        seeds=(0,),
        seeds_by_backend={"numpy": (0, 1, 2)},
        stock=("jax",),
        val_offset={("adam", 0.01): 0.005},
        diverge=(),
    )
    paths = write_report(folder)
    page, md = paths["html"].read_text(), paths["md"].read_text()
    assert "id='optimizer-verdict'" in page and "id='stock-drift'" in page
    assert page.index("id='verdict'") < page.index("id='optimizer-verdict'")
    verdict = section_of(md, "Optimizer verdict")
    assert "From the spec runs of **numpy/compiled/numpy/cpu**: 3 seed(s) per" in verdict
    assert (
        "| adam | the only one | lr 0.01, test acc 0.934 [0.934, 0.934], target 0.910 reached in"
        in verdict
    )
    assert "the only optimizer with a best learning rate here |" in verdict
    assert "min-max over" not in verdict.split("### Each")[0]
    assert "One workload: each profile is a single point" in verdict
    assert "| adam | 1 / 1 | 1.00 | 1.00 | 1.00 | 1.00 | 1.000 |" in verdict
    drift = section_of(md, "What the stock defaults change")
    assert "| 32 | adam | 0.01 | jax | 1 / 0 | -0.030 | 0.030 (validation accuracy, step " in drift
    assert drift.rstrip().splitlines()[-3].endswith("| - |")  # one framework: no spread
    assert page.count("<img") >= 9  # the profile and the drift figure besides the others


def test_an_old_folder_without_the_new_columns_still_renders(tmp_path):
    folder = make_results(
        tmp_path / "old",
        backends=("numpy",),
        optimizers={"adam": [0.001]},
        batch_sizes=(32,),
        seeds=(0,),
        new_columns=False,
    )
    md = write_report(folder)["md"].read_text()
    verdict = section_of(md, "Optimizer verdict")
    assert "runs.parquet holds no validation accuracy" in verdict
    assert "| adam | 1 | no validation accuracy |" in verdict
    assert "No optimizer has a best learning rate, so there is no profile." in verdict
    assert "ran no stock-variant runs" in section_of(md, "What the stock defaults change")
    assert "## Verdict" in md and "## Convergence" in md  # the rest as before
