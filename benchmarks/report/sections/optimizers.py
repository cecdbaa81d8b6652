"""The optimizer verdict: the optimizer to use per data set and batch size and why, each
optimizer at its best learning rate, the performance profiles, and whether the backends
agree at those learning rates. The numbers are :mod:`benchmarks.report.optimizers`'."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from benchmarks.report import figures
from benchmarks.report import format as fmt
from benchmarks.report import optimizers as opt
from benchmarks.report.analysis import DISAGREE_ACC, Analysis
from benchmarks.report.document import Bold, Heading, Paragraph, Section, Span, para, table
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results
from benchmarks.report.sections.lr_sensitivity import disagreement_table

TITLE = "Optimizer verdict: which optimizer, at which learning rate"
NUMERIC = (
    "batch",
    "lrs tried",
    "best lr",
    "val acc",
    "test acc",
    "test loss",
    "target",
    "steps",
    "time",
    "largest stable lr",
)
ROBUST = "lr robustness (decades)"
SMALL = ("reached", ROBUST)


def build(res: Results, an: Analysis) -> Section:
    oa: opt.OptimizerAnalysis = an.optimizers
    if res.runs.empty or oa is None:
        return Section("optimizer-verdict", TITLE, [para("No runs: no verdict.", cls="warn")])
    blocks: list[Any] = [para(m + ".", cls="warn") for m in oa.missing]
    if oa.series is None:
        return Section("optimizer-verdict", TITLE, blocks)
    who = fmt.path_label(oa.series)
    blocks.append(
        para(
            "From the spec runs of ",
            Bold(who),
            f": {oa.series_why}. Seeds, not frameworks, make its spread; whether the other "
            "backends agree is checked below.",
            cls="note",
        )
    )
    v = oa.verdict
    name = namer(v)
    if len(v) and v["best_lr"].notna().any():
        rec = recommendations(oa.recommended, oa.tolerance, name)
        blocks += [Heading("Recommended", 3), table(fmt.drop_constant(rec, ("dataset",)), "opts")]
    blocks += [
        Heading("Each optimizer at its best learning rate", 3),
        table(
            fmt.drop_constant(display(v, oa.tolerance, name), ("dataset",)),
            "opts",
            numeric=NUMERIC,
            small=SMALL,
        ),
        schedules(v),
        *method(oa),
        *profile_blocks(oa, name),
        *agreement_blocks(oa, an.spec["backend"].nunique()),
    ]
    return Section("optimizer-verdict", TITLE, [b for b in blocks if b is not None])


Namer = Callable[[str, str], str]


def namer(v: pd.DataFrame) -> Namer:
    """Names (optimizer, schedule) as the optimizer's name, with its schedule where the sweep
    ran that optimizer under several (a schedule is otherwise part of the named
    configuration, listed once by :func:`schedules`)."""
    several = set(v.groupby("optimizer")["schedule"].nunique().loc[lambda n: n > 1].index)

    def name(optimizer: str, schedule: str) -> str:
        return f"{optimizer} ({schedule})" if optimizer in several else optimizer

    return name


def schedules(v: pd.DataFrame) -> Paragraph | None:
    """The learning-rate schedule of each optimizer that has one other than constant."""
    sched = v[v["schedule"] != "constant"][["optimizer", "schedule"]].drop_duplicates()
    if sched.empty:
        return None
    return note(
        Bold("Schedules"),
        " (every other optimizer: a constant learning rate): "
        + "; ".join(f"{o}: {s}" for o, s in sched.itertuples(index=False))
        + ".",
    )


def _acc(r: dict[str, Any]) -> str:
    """The test accuracy and its interval: "0.930 [0.920, 0.940]", or the note in its place."""
    if not r["test_acc"] == r["test_acc"]:
        return "-"
    if r["test_low"] == r["test_low"]:
        return f"{r['test_acc']:.3f} [{r['test_low']:.3f}, {r['test_high']:.3f}]"
    return f"{r['test_acc']:.3f} ({r['interval_note']})"


def _time(r: dict[str, Any]) -> str:
    t = r["time_s"]
    if not t == t:
        return r.get("reach_note") or "-"
    return "not reached" if t == math.inf else fmt.secs(t)


def _robust(r: dict[str, Any], tolerance: float = opt.TOLERANCE, short: bool = False) -> str:
    """ "≥ 1.0 decades (0.01-0.1, grid edge)"; ``short``: "≥ 1.0 (0.01-0.1, edge)"."""
    if r["robust_note"] == opt.ONE_LR or not r["decades"] == r["decades"]:
        return r["robust_note"] or "-"
    unit = "" if short else " decades"
    if r["robust_low"] == r["robust_high"]:  # no neighbour within the tolerance
        return f"0{unit} (only {r['best_lr']:g}" + ("" if short else f" within {tolerance:g}") + ")"
    edge = r["robust_note"] == opt.AT_EDGE
    span = f"{r['robust_low']:g}-{r['robust_high']:g}"
    at_edge = (", edge" if short else ", grid edge") if edge else ""
    return f"{'≥ ' if edge else ''}{r['decades']:.1f}{unit} ({span}{at_edge})"


def _stable(r: dict[str, Any]) -> str:
    if not r["stable_lr"] == r["stable_lr"]:
        return r["stable_note"] or "-"
    return ("≥ " if r["stable_note"] == opt.STABLE_EDGE else "") + f"{r['stable_lr']:g}"


def display(
    v: pd.DataFrame, tolerance: float = opt.TOLERANCE, name: Namer | None = None
) -> pd.DataFrame:
    """The verdict table as the page shows it: a note wherever a number cannot be given."""
    name = name or namer(v)
    rows = []
    for r in v.to_dict("records"):
        chosen = r["best_lr"] == r["best_lr"]
        best = f"{r['best_lr']:g}" if chosen else r["best_lr_note"]
        if chosen and r["best_lr_note"]:
            best += f" ({r['best_lr_note']})"
        seeds = r["target_seeds"]
        reached = f"{r['reached']:.0f} of {seeds:.0f}" if seeds == seeds and seeds else "-"
        rows.append(
            {
                "dataset": r["dataset"],
                "batch": int(r["batch_size"]),
                "optimizer": name(r["optimizer"], r["schedule"]),
                "lrs tried": int(r["lrs"]),
                "best lr": best,
                "val acc": fmt.num(r["val_acc"], ".3f"),
                "test acc": _acc(r),
                "test loss": fmt.num(r["test_loss"], ".3f"),
                "target": fmt.num(r["target"], ".3f"),
                "steps": fmt.num(r["steps"], ".0f") if chosen and r["steps"] != math.inf else "-",
                "time": _time(r) if chosen else "-",
                "reached": reached,
                ROBUST: _robust(r, tolerance, short=True) if chosen else "-",
                "largest stable lr": _stable(r),
                "ok / div / fail": f"{r['ok']} / {r['diverged']} / {r['failed'] + r['skipped']}",
            }
        )
    return pd.DataFrame(rows)


#: the rule that decided a workload, in a word or two (the table's "rule" column)
_RULES = {
    opt.BEST_VAL: "accuracy",
    opt.FASTEST_NEAR: "time to target",
    opt.TIED_STEPS: "tie: steps",
    opt.TIED_VAL: "tie: accuracy",
    opt.ANY_OF: "tie",
}


def recommendations(rec: pd.DataFrame, tolerance: float, name: Namer) -> pd.DataFrame:
    """One row per data set x batch size: the optimizer to use, and why in one line."""
    rows = []
    for r in rec.to_dict("records"):
        if not r["optimizer"]:
            rows.append(
                {
                    "dataset": r["dataset"],
                    "batch": int(r["batch_size"]),
                    "use": "-",
                    "rule": "-",
                    "why": "no optimizer has a best learning rate here",
                }
            )
            continue
        bits = [f"lr {r['best_lr']:g}", f"test acc {_acc(r)}"]
        t = r["time_s"]
        if t == t and t != math.inf:
            bits.append(
                f"target {r['target']:.3f} reached in {fmt.secs(t)} ({r['steps']:.0f} steps)"
            )
        elif t == math.inf:
            bits.append(f"target {r['target']:.3f} not reached (median over seeds)")
        if r["decades"] == r["decades"]:
            bits.append(f"robust over {_robust(r, tolerance)}")
        elif r["robust_note"]:
            bits.append(f"robustness: {r['robust_note']}")
        if r["compared"] == 1:
            why = "the only optimizer with a best learning rate here"
        elif r["reason"] == opt.BEST_VAL:
            why = "the best validation accuracy" + (
                f", none of the {r['near']} within {tolerance:g} of it reaching the target"
                if r["near"] > 1
                else f", no other within {tolerance:g} of it"
            )
        elif r["reason"] == opt.FASTEST_NEAR:
            why = (
                f"the fastest to the target of the {r['near']} optimizers within {tolerance:g} of "
                + (
                    "the best validation accuracy"
                    if r["best_val_optimizer"] == r["optimizer"]
                    else f"the best validation accuracy ({r['best_val_optimizer']}'s)"
                )
                + f", by more than the tie margin ({opt.TIE_MARGIN:.0%})"
            )
        else:
            tied = ", ".join(name(*s) for s in r["tied"])
            decided = {
                opt.TIED_STEPS: "the fewest steps to the target decides",
                opt.TIED_VAL: "as many steps to the target: the best validation accuracy decides",
                opt.ANY_OF: "nothing separates them",
            }[r["reason"]]
            why = (
                f"{tied} reach the target within the tie margin ({opt.TIE_MARGIN:.0%}) of the "
                f"fastest time, among the {r['near']} within {tolerance:g} of the best "
                f"validation accuracy; {decided}"
            )
        if r["runner_up"] is not None and r["reason"] != opt.ANY_OF:
            why += f"; runner-up {name(*r['runner_up'])}: {r['margin']}"
        use = (
            "any of " + ", ".join(name(*s) for s in r["any_of"])
            if len(r["any_of"])
            else name(r["optimizer"], r["schedule"])
        )
        rows.append(
            {
                "dataset": r["dataset"],
                "batch": int(r["batch_size"]),
                "use": use,
                "rule": _RULES.get(r["reason"], "-") if r["compared"] > 1 else "the only one",
                "why": f"{', '.join(bits)}; {why}",
            }
        )
    return pd.DataFrame(rows)


def note(*spans: Span) -> Paragraph:
    return para(*spans, cls="note")


def method(oa: opt.OptimizerAnalysis) -> list[Paragraph]:
    targets = "; ".join(
        f"{r['dataset']}: {fmt.num(r['target'], '.3f')} ({r['source']})"
        for r in oa.targets.to_dict("records")
    )
    return [
        note(
            Bold("Best lr"),
            ": the highest mean final validation accuracy over seeds (a split held out from the "
            "training data), among the learning rates where no seed diverged; ties to the smaller lr. "
            "Test accuracy is reported at that lr and never used to choose. ",
            Bold("Test acc"),
            ": mean over seeds, [min, max] over seeds (with two or three seeds a t-interval would "
            "rest on an assumed normal error; with one seed there is no interval).",
        ),
        note(
            Bold("Target"),
            f" (validation accuracy; {targets or 'none'}): ",
            Bold("steps"),
            " and ",
            Bold("time"),
            " are the median over seeds of the first evaluation reaching it; the time is that "
            "many steps at the run's median step time (its timed blocks: a stall of a busy "
            "machine in one run does not decide the ranking; the first step, compilation, is "
            "not counted); a seed that never reaches it counts as infinitely slow, so the median "
            "is 'not reached' where most do not. The sweep's settings may set a target per data "
            "set (targets).",
        ),
        note(
            Bold("Lr robustness"),
            f": the width in decades (log10 of max/min) of the neighbouring learning rates around "
            f"the best whose mean validation accuracy is within {oa.tolerance:g} of the best, none "
            "diverged; '≥' where that range reaches the edge of the grid. ",
            Bold("Largest stable lr"),
            ": the largest with no diverged seed ('≥' where it is the largest tried). ",
            Bold("Recommended"),
            f": the best validation accuracy, or among those within {oa.tolerance:g} of it (seed "
            "noise with this few seeds) the fastest to the target.",
        ),
    ]


def profile_blocks(oa: opt.OptimizerAnalysis, name: Namer) -> list[Any]:
    head = Heading("Performance profiles: time to the target across workloads", 3)
    if oa.ratios.empty:
        why = (
            "No time to the target is known (no validation curve), so there is no profile."
            if oa.verdict["best_lr"].notna().any()
            else "No optimizer has a best learning rate, so there is no profile."
        )
        return [head, para(why, cls="muted")]
    n = oa.ratios[opt.WORKLOAD].drop_duplicates().shape[0]
    labels = {
        (r["optimizer"], r["schedule"]): name(r["optimizer"], r["schedule"])
        for r in oa.ratios.to_dict("records")
    }
    blocks: list[Any] = [
        head,
        note(
            "Dolan & More's performance profiles, as AlgoPerf scores optimizers: a workload is a "
            "data set x batch size; rho(tau) is the fraction of workloads where the optimizer, at its "
            "best learning rate, reaches the target within tau x the fastest optimizer's time "
            "(never reaching it: never within any tau). ",
            Bold("Score"),
            f": the area under rho from 1 to {opt.TAU_MAX:g}, over {opt.TAU_MAX - 1:g} "
            "(1 = the fastest on every workload).",
        ),
    ]
    if n == 1:
        blocks.append(
            para(
                "One workload: each profile is a single point (the optimizer is within tau of the "
                "fastest or not), so the profile ranks the optimizers on that workload only.",
                cls="warn",
            )
        )
    blocks.append(figure_block(figures.performance_profile(oa.ratios, labels)))
    p = oa.profile
    shown = pd.DataFrame(
        {
            "optimizer": [name(o, s) for o, s in zip(p["optimizer"], p["schedule"])],
            "reached / workloads": [f"{a} / {b}" for a, b in zip(p["solved"], p["workloads"])],
            **{f"rho({t:g})": p[f"rho_{t:g}"].map(lambda x: f"{x:.2f}") for t in opt.TAUS},
            "score": p["score"].map(lambda x: f"{x:.3f}"),
        }
    )
    blocks.append(table(shown, numeric=[c for c in shown.columns if c != "optimizer"]))
    return blocks


def agreement_blocks(oa: opt.OptimizerAnalysis, backends: int) -> list[Any]:
    head = Heading("Do the backends' spec runs agree?", 3)
    d = oa.agreement
    if backends < 2:
        return [head, para("One backend ran the spec runs: nothing to compare.", cls="note")]
    if d.empty:
        return [
            head,
            para(
                f"Everywhere: no configuration's final test accuracy differs by more than "
                f"{100 * DISAGREE_ACC:g} points between backends (or one backend ran each).",
                cls="note",
            ),
        ]
    best = d[d["at_best"]]
    if best.empty:
        return [
            head,
            para(
                f"At every best learning rate above, yes: the {len(d)} configuration(s) that end "
                f"more than {100 * DISAGREE_ACC:g} points apart between backends are at other "
                "learning rates (listed under Learning-rate sensitivity).",
                cls="note",
            ),
        ]
    return [
        head,
        para(
            f"{len(best)} best learning rate(s) above end more than {100 * DISAGREE_ACC:g} "
            "points apart between backends: the verdict's figures there would differ had "
            f"another backend given them ({len(d)} such configuration(s) in all, listed under "
            "Learning-rate sensitivity).",
            cls="warn",
        ),
        disagreement_table(best),
    ]
