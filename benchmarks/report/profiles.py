"""What the optimizer verdict (:mod:`benchmarks.report.optimizers`) is set beside, across
workloads (data set x batch size): Dolan & More's performance profiles of the time to
target, with AlgoPerf's score (:func:`performance_profile`); the cells where the backends'
spec runs part, and whether the verdict's best learning rate is one (:func:`agreement`);
what each framework's stock optimizer (its own defaults) changes at the best spec learning
rate (:func:`stock_drift`). DataFrames in, DataFrames out, no formatting.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report.frameworks import disagreements
from benchmarks.report.runs import (
    DIVERGED,
    GROUP,
    OK,
    SPEC,
    STOCK,
    curves_with_defaults,
    with_defaults,
)

WORKLOAD = ["dataset", "batch_size"]  # what a performance profile counts
SOLVER = ["optimizer", "schedule"]  # a named optimizer configuration with its lr schedule
KEY = [*WORKLOAD, *SOLVER]
#: the profile's table columns, and the upper end of its score's integral (AlgoPerf's 4)
TAUS = (1.0, 1.5, 2.0, 4.0)
TAU_MAX = 4.0
DRIFT_COLUMNS = [
    *KEY,
    "lr",
    *GROUP,
    "stock_runs",
    "stock_ok",
    "stock_diverged",
    "stock_acc",
    "spec_acc",
    "acc_diff",
    "gap",
    "gap_metric",
    "gap_step",
    "stock_spread",
]


def matching(df: pd.DataFrame, cols: list[str], values: dict[str, Any]) -> pd.Series:
    """Rows of ``df`` whose ``cols`` equal ``values`` (none where ``values`` is empty)."""
    mask = pd.Series(bool(values), index=df.index)
    for c in cols if values else []:
        mask &= df[c] == values[c]
    return mask


# --- performance profiles --------------------------------------------------------------


def profile_ratios(verdict: pd.DataFrame) -> pd.DataFrame:
    """Per workload x solver (every solver of the sweep on every workload): its time to the
    target (inf where it has no best lr, did not reach it, or did not run there) and its
    ratio to the workload's fastest (inf where no solver reached it). Empty where no time to
    target is known at all (no validation curves)."""
    cols = [*KEY, "time_s", "ratio"]
    if verdict.empty or "time_s" not in verdict or verdict["time_s"].isna().all():
        return pd.DataFrame(columns=cols)
    times = {
        tuple(r[k] for k in KEY): float(r["time_s"])
        for r in verdict.to_dict("records")
        if r["time_s"] == r["time_s"]
    }
    workloads = sorted({tuple(r) for r in verdict[WORKLOAD].itertuples(index=False)})
    solvers = sorted({tuple(r) for r in verdict[SOLVER].itertuples(index=False)})
    rows = []
    for w in workloads:
        t = {s: times.get((*w, *s), math.inf) for s in solvers}
        fastest = min(t.values())
        for s in solvers:
            if not math.isfinite(fastest) or not math.isfinite(t[s]):
                ratio = math.inf
            else:  # a target reached at the first evaluation takes 0 s: a tie at 1
                ratio = t[s] / fastest if fastest > 0 else (1.0 if t[s] == 0 else math.inf)
            rows.append({**dict(zip(KEY, (*w, *s))), "time_s": t[s], "ratio": ratio})
    return pd.DataFrame(rows, columns=cols)


def rho(ratios: pd.DataFrame, taus: list[float] | tuple[float, ...]) -> pd.DataFrame:
    """rho_s(tau): the fraction of workloads where solver s is within tau of the fastest,
    per solver (rows) and tau (columns)."""
    taus = list(taus)
    out = {}
    for key, g in ratios.groupby(SOLVER, sort=True):
        r = g["ratio"].to_numpy(float)
        out[key] = [float((r <= tau * (1 + 1e-12)).mean()) for tau in taus]
    idx = pd.MultiIndex.from_tuples(list(out), names=SOLVER)
    return pd.DataFrame(list(out.values()), index=idx, columns=taus)


def performance_profile(
    ratios: pd.DataFrame, taus: tuple[float, ...] = TAUS, tau_max: float = TAU_MAX
) -> pd.DataFrame:
    """Per solver: workloads, solved (target reached), rho at ``taus`` (columns
    ``rho_<tau>``) and the score: the area under rho over [1, tau_max] divided by
    ``tau_max - 1`` (AlgoPerf's benchmark score; 1 = fastest on every workload), computed
    exactly: each workload adds ``max(0, tau_max - ratio)``."""
    cols = ["optimizer", "schedule", "workloads", "solved", *(f"rho_{t:g}" for t in taus), "score"]
    if ratios.empty:
        return pd.DataFrame(columns=cols)
    r = rho(ratios, taus)
    rows = []
    for key, g in ratios.groupby(SOLVER, sort=True):
        x = g["ratio"].to_numpy(float)
        area = np.clip(tau_max - np.maximum(x, 1.0), 0.0, None)
        rows.append(
            {
                **dict(zip(SOLVER, key)),
                "workloads": len(x),
                "solved": int(np.isfinite(x).sum()),
                **{f"rho_{t:g}": r.loc[key, t] for t in taus},
                "score": float(area.mean() / (tau_max - 1)),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["score", "optimizer"], ascending=[False, True]).reset_index(drop=True)


# --- do the backends agree -------------------------------------------------------------


def agreement(runs: pd.DataFrame, verdict: pd.DataFrame) -> pd.DataFrame:
    """:func:`benchmarks.report.analysis.disagreements` of the spec runs (cells of data set,
    device, optimizer, lr, batch size), with ``at_best``: whether the cell's lr is its
    optimizer's best in the verdict (so the verdict's figures depend on the backend)."""
    d = disagreements(runs)
    if d.empty:
        return d.assign(at_best=pd.Series(dtype=bool))
    best = set()
    if len(verdict) and "best_lr" in verdict:
        for r in verdict.dropna(subset=["best_lr"]).to_dict("records"):
            best.add((r["dataset"], r["optimizer"], int(r["batch_size"]), round(r["best_lr"], 12)))
    d["at_best"] = [
        (r["dataset"], r["optimizer"], int(r["batch_size"]), round(r["lr"], 12)) in best
        for r in d.to_dict("records")
    ]
    return d


# --- what the stock defaults change ----------------------------------------------------


def _mean_curve(curves: pd.DataFrame, run_ids: list[str], metric: str) -> pd.DataFrame:
    c = curves[curves["run_id"].isin(run_ids)].dropna(subset=[metric])
    return c.groupby("step")[metric].mean().rename("y").reset_index()


def stock_drift(
    runs: pd.DataFrame,
    curves: pd.DataFrame | None,
    verdict: pd.DataFrame,
    series: dict[str, str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per KEY at its best spec lr and per series with stock runs there: the stock runs'
    mean final test accuracy minus the spec runs' (the verdict series' spec runs, at the
    seeds the stock runs used where it ran them: same initial weights and batches), the
    largest gap between their mean validation-accuracy curves (training loss where either
    lacks one) and its step, and the spread (max - min) of the stock accuracies across
    series. Returns (:data:`DRIFT_COLUMNS` rows, the curves: ``line`` "spec" or "stock",
    the series, lr, metric, step, y)."""
    curve_cols = [*KEY, "lr", "line", *GROUP, "metric", "step", "y"]
    runs = with_defaults(runs)
    curves = curves_with_defaults(curves)
    stock = runs[runs["variant"] == STOCK]
    empty = pd.DataFrame(columns=DRIFT_COLUMNS), pd.DataFrame(columns=curve_cols)
    if stock.empty or series is None or verdict.empty or "best_lr" not in verdict:
        return empty
    spec = runs[(runs["variant"] == SPEC) & matching(runs, GROUP, series)]
    rows, lines, drawn = [], [], set()
    for v in verdict.dropna(subset=["best_lr"]).to_dict("records"):

        def at(df: pd.DataFrame, v: dict = v) -> pd.DataFrame:
            return df[matching(df, KEY, v) & np.isclose(df["lr"], v["best_lr"])]

        st = at(stock)
        if st.empty:
            continue
        ref_all = at(spec)
        ref_all = ref_all[ref_all["status"] == OK]
        first = len(rows)
        for g, sdf in st.groupby(GROUP, sort=True):
            ok = sdf[sdf["status"] == OK]
            ref = ref_all[ref_all["seed"].isin(sdf["seed"])]
            ref = ref if len(ref) else ref_all
            row = {
                **{k: v[k] for k in KEY},
                "lr": v["best_lr"],
                **dict(zip(GROUP, g)),
                "stock_runs": len(sdf),
                "stock_ok": len(ok),
                "stock_diverged": int((sdf["status"] == DIVERGED).sum()),
                "stock_acc": ok["final_test_acc"].mean() if len(ok) else math.nan,
                "spec_acc": ref["final_test_acc"].mean() if len(ref) else math.nan,
            }
            row["acc_diff"] = row["stock_acc"] - row["spec_acc"]
            row.update(gap=math.nan, gap_metric="", gap_step=math.nan)
            if curves is not None and len(ok) and len(ref):
                metric = "val_acc"
                s_c = _mean_curve(curves, list(ok["run_id"]), metric)
                r_c = _mean_curve(curves, list(ref["run_id"]), metric)
                if s_c.empty or r_c.empty:
                    metric = "train_loss"
                    s_c = _mean_curve(curves, list(ok["run_id"]), metric)
                    r_c = _mean_curve(curves, list(ref["run_id"]), metric)
                both = s_c.merge(r_c, on="step", suffixes=("_stock", "_spec"))
                if len(both):
                    diff = (both["y_stock"] - both["y_spec"]).abs()
                    j = int(diff.to_numpy().argmax())
                    step = float(both["step"].iloc[j])
                    row.update(gap=float(diff.iloc[j]), gap_metric=metric, gap_step=step)
                    base = {**{k: v[k] for k in KEY}, "lr": v["best_lr"], "metric": metric}
                    lines.append(s_c.assign(**base, line=STOCK, **dict(zip(GROUP, g))))
                    if (*base.values(),) not in drawn:  # the spec line once per panel
                        drawn.add((*base.values(),))
                        lines.append(r_c.assign(**base, line=SPEC, **series))
            rows.append(row)
        accs = [r["stock_acc"] for r in rows[first:] if r["stock_acc"] == r["stock_acc"]]
        spread = max(accs) - min(accs) if len(accs) > 1 else math.nan
        for r in rows[first:]:
            r["stock_spread"] = spread
    drift = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    drawn_curves = pd.concat(lines, ignore_index=True)[curve_cols] if lines else empty[1]
    return drift, drawn_curves
