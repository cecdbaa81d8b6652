"""The verdict: which series is fastest at each batch size, how accurate, how soon it gets
to the target accuracy; the headline sentence and the notes on method."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from benchmarks.core import stats
from benchmarks.report import figures
from benchmarks.report import format as fmt
from benchmarks.report.analysis import (
    BY_TEST,
    DISAGREE_ACC,
    FROM_RUNS,
    GROUP,
    NO_COMPILE_S,
    NOISY_RATIO,
    PEAK_SOURCE,
    REUSED_FRACTION,
    Analysis,
    fastest,
    first_step_reuse,
    hosts,
    ranking,
)
from benchmarks.report.document import Bold, Details, Paragraph, Section, Span, para, table
from benchmarks.report.document import figures as figure_block
from benchmarks.report.load import Results

NUMERIC = (
    "batch",
    "median samples/s",
    "95% interval",
    "× fastest",
    "TFLOP/s",
    "of peak",
    "first step",
    "best acc",
    "steps",
    "ok / div / fail",
)
SMALL = ("best at", "reached with", "95% interval")


def build(res: Results, an: Analysis) -> Section:
    if res.runs.empty:
        return Section(
            "verdict",
            "Verdict",
            [para("No runs were recorded, so there is nothing to compare.", cls="warn")],
        )
    v = an.verdict
    shown = fmt.drop_constant(display(v, an.target, res.curves is not None))
    if v["fraction_of_peak"].isna().all():  # no GPU with a known peak
        shown = shown.drop(columns="of peak")
    numeric = [*NUMERIC, *(c for c in shown.columns if c.startswith("time to"))]
    notes = [n for builder in NOTES for n in builder(res, an)]
    style = figures.styles([tuple(k) for k in v[GROUP].drop_duplicates().itertuples(index=False)])
    return Section(
        "verdict",
        "Verdict: speed and accuracy per batch size",
        [
            headline(v),
            *one_backend(v),
            # the answer as a picture first, then the table; how each figure is taken folds away
            figure_block(figures.verdict(v, style, an.target if res.curves is not None else None)),
            table(shown, "verdict", numeric=numeric, small=SMALL),
            Details(f"How these figures are taken ({len(notes)} notes)", tuple(notes)),
        ],
    )


# --- the notes under "How these figures are taken", one builder each, in order -----------


def _method_notes(res: Results, an: Analysis) -> list[Paragraph]:
    return [
        note(
            Bold("One row per batch size"),
            ": throughput grows several-fold with the batch, so a single figure pooled "
            "over batch sizes would mostly measure the batch-size mix; backends are compared within a batch size.",
        ),
        note(
            Bold("Throughput"),
            ": each timed block gives steps x batch size / seconds (blocks of at least half the "
            "full size; diverged runs up to the block that diverged, so that every backend's pool holds the same "
            "configurations; the rule of the runner's samples_per_s; warm-up and the first step excluded), pooled "
            "over the group's runs "
            "(optimizers, learning rates and seeds); median with a 95% two-stage bootstrap interval "
            f"(resampling runs, then blocks within runs; {stats.N_BOOT} replicates).",
        ),
        note(
            Bold(f"Target accuracy {an.target:.2f}"),
            f" (test accuracy; {an.target_why}): time is training wall-clock "
            "after the first step (evaluation excluded) at the first evaluation reaching it, for the "
            "optimizer/lr of that row that reaches it soonest, named under reached with (median over seeds; "
            "evaluations every few steps, so it is resolved to them). A measure of speed, not a choice of "
            "optimizer: the optimizer verdict's target is a validation accuracy.",
        ),
        best_note(an.verdict),
    ]


def _cold_start_notes(res: Results, an: Analysis) -> list[Paragraph]:
    reuse = first_step_reuse(res.runs)
    return [cold_start_note(reuse)] if len(reuse) else []


def _same_notes(res: Results, an: Analysis) -> list[Paragraph]:
    same = [
        f"{c} {res.runs[c].iloc[0]}"
        for c in ("dataset", "mode", "device")
        if res.runs[c].nunique() == 1 and res.runs[c].iloc[0] != ""
    ]
    return [note("Every run used " + ", ".join(same) + ".")] if same else []


def _spec_notes(res: Results, an: Analysis) -> list[Paragraph]:
    if not an.stock_runs:
        return []
    return [
        note(
            Bold("Spec runs only"),
            f": every framework on the same formulas; the {an.stock_runs} stock-variant runs "
            "(each framework's own optimizer at its defaults) are compared in What the stock "
            "defaults change.",
        )
    ]


def _dataset_notes(res: Results, an: Analysis) -> list[Paragraph]:
    if an.verdict["dataset"].nunique() <= 1:
        return []
    return [
        note(
            Bold("One row per data set"),
            ": the input size sets the step's cost, so speeds are compared within a data set.",
        )
    ]


def _missing_notes(res: Results, an: Analysis) -> list[Paragraph]:
    out = []
    if (an.verdict["throughput_source"] == FROM_RUNS).any():
        out.append(
            note(
                "timings.parquet is missing: samples/s is the median of the runs' own medians, without interval."
            )
        )
    if res.curves is None:
        out.append(note("curves.parquet is missing: no time or steps to the target accuracy."))
    return out


def _machines_notes(res: Results, an: Analysis) -> list[Paragraph]:
    where = hosts(res.runs)
    if len(where) <= 1:
        return []
    return [
        para(
            Bold("Several machines"),
            ": this sweep's runs came from "
            + ", ".join(f"{r.host} ({r.runs} runs)" for r in where.itertuples())
            + "; a row pools runs of whichever hosts ran it, so compare rows with care "
            "(the host of every run is in runs.parquet).",
            cls="warn",
        )
    ]


def _noisy_notes(res: Results, an: Analysis) -> list[Paragraph]:
    v = an.verdict
    noisy = v[v["noisy"]]
    if not len(noisy):
        return []
    return [
        para(
            Bold("Noisy"),
            f": {len(noisy)} of {len(v)} rows have a 95% interval wider than "
            f"{NOISY_RATIO:g}x (e.g. {fmt.path_label(noisy.iloc[0])} at batch "
            f"{noisy.iloc[0]['batch_size']}); the machine was probably busy. Where "
            "intervals overlap the order is not settled: rerun on a quiet machine.",
            cls="warn",
        )
    ]


def _disagree_notes(res: Results, an: Analysis) -> list[Paragraph]:
    if not len(an.disagreements):
        return []
    return [
        note(
            Bold("Where backends disagree on accuracy"),
            f": {len(an.disagreements)} configuration(s) end more than "
            f"{100 * DISAGREE_ACC:g} points apart between backends; see Learning-rate "
            "sensitivity for each, with the reason.",
        )
    ]


def _tflops_notes(res: Results, an: Analysis) -> list[Paragraph]:
    return [
        note(
            Bold("TFLOP/s"),
            ": achieved, 6 x parameters x samples/s (forward and backward matmuls; the "
            "optimizer's elementwise work left out)"
            + (
                f"; of peak: against {an.peak[0]}'s float32 peak without tensor cores, "
                f"{an.peak[1]:g} TFLOP/s ({PEAK_SOURCE})."
                if an.peak
                else "."
            ),
        )
    ]


#: the verdict's notes, in the order shown: each ``(res, an) -> [paragraphs]`` (none where
#: it has nothing to say); a new note is one function and one line here
NOTES: tuple[Callable[[Results, Analysis], list[Paragraph]], ...] = (
    _method_notes,
    lambda res, an: seeds_note(an),
    _cold_start_notes,
    _same_notes,
    _spec_notes,
    _dataset_notes,
    _missing_notes,
    _machines_notes,
    _noisy_notes,
    _disagree_notes,
    _tflops_notes,
)


def note(*spans: Span) -> Paragraph:
    return para(*spans, cls="note")


def best_note(v: pd.DataFrame) -> Paragraph:
    """How the best optimizer/lr was chosen (by validation accuracy, as the optimizer
    verdict; by test accuracy only where the folder records no validation accuracy)."""
    by_test = v["best_chosen_by"] == BY_TEST
    how = (
        "the highest mean final validation accuracy (a split held out from the training data) "
        "among the optimizers/lrs where no run diverged, as in the optimizer verdict; ties to "
        "the smaller lr. Its test accuracy is reported and never used to choose"
    )
    if by_test.all():
        how = (
            "the highest mean final test accuracy among the optimizers/lrs where no run "
            "diverged (these runs recorded no validation accuracy to choose by)"
        )
    elif by_test.any():
        how += f" (by test accuracy in {int(by_test.sum())} row(s) whose runs recorded no validation accuracy)"
    return note(
        Bold("Best acc"),
        ": final test accuracy (mean over seeds) of the optimizer/lr under best at: ",
        how + ". ",
        Bold("First step"),
        ": median time of the first training step (tracing, compilation, first "
        "allocations), shown apart from the time to target because it depends on each "
        "framework's in-process caches (see Cold start). ",
        Bold("ok / div / fail"),
        ": runs that finished, diverged, or failed (error, timeout, crashed or skipped); see Problems.",
    )


def _seeds(seeds: list[float]) -> str:
    return ", ".join(f"{s:g}" for s in seeds)


def seeds_note(an: Analysis) -> list[Paragraph]:
    """Which seeds the verdict compares on, where some series ran more (none where every
    series ran the same seeds)."""
    extra = an.seeds_left_out
    if an.seeds and extra is not None and len(extra):
        who = "; ".join(
            f"{fmt.path_label(r)}'s {_seeds(r['seeds'])} ({r['runs']} runs)"
            for r in extra.to_dict("records")
        )
        return [
            note(
                Bold("Seeds"),
                f": every row is on seed(s) {_seeds(an.seeds)}, those every series ran, so that "
                "each backend is compared on the same seeds. Left out here: "
                f"{who}; the extra seeds serve the optimizer verdict.",
            )
        ]
    spec = an.spec if an.spec is not None else pd.DataFrame(columns=[*GROUP, "seed"])
    per_series = spec.dropna(subset=["seed"]).groupby(GROUP)["seed"].unique()
    if not an.seeds and len(per_series) > 1:
        return [
            note(
                Bold("Seeds"),
                ": the series share no seed, so each row pools its own seeds: "
                + "; ".join(
                    f"{fmt.path_label(dict(zip(GROUP, k)))} {_seeds(sorted(v))}"
                    for k, v in per_series.items()
                )
                + ".",
            )
        ]
    return []


def cold_start_note(reuse: pd.DataFrame) -> Paragraph:
    """The cold start of each series against its later runs' first steps, said per series
    from the data: reused across runs, compiled again in each run, or nothing to compile.
    ``reuse``: :func:`~benchmarks.report.analysis.first_step_reuse`."""

    def said(r: dict) -> str:
        head = f"{fmt.path_label(r)} {fmt.secs(r['cold_s'])}"
        if not r["later_runs"]:
            return head
        later = f"{head}, later runs {fmt.secs(r['later_s'])}"
        if r["reused"]:
            return f"{later} (the compile is reused across runs)"
        if r["cold_s"] < NO_COMPILE_S:
            return f"{later} (nothing to compile to speak of)"
        return f"{later} (not reused: each run's first step compiles again)"

    return note(
        Bold("Cold start"),
        " (the first step of each worker's first run, with empty in-process caches) against "
        "the median first step of the worker's later runs; a later first step under "
        f"{REUSED_FRACTION:.0%} of the cold start counts as reusing what the first run compiled: "
        + "; ".join(said(r) for r in reuse.to_dict("records"))
        + ".",
    )


def one_backend(v: pd.DataFrame) -> list[Paragraph]:
    """What a verdict of one backend cannot say (none where several ran)."""
    names = list(dict.fromkeys(v["backend"]))
    if len(names) != 1:
        return []
    return [
        note(
            f"One backend only ({names[0]}): nothing to compare across backends; the figures "
            "and tables show its own speed and accuracy."
        )
    ]


def headline(v: pd.DataFrame) -> Paragraph:
    """One sentence: the fastest per batch size and the geometric-mean relative speed."""
    timed = v.dropna(subset=["samples_per_s"])
    if timed.empty:
        return para(
            "No run produced a throughput figure, so there is no speed verdict.", cls="headline"
        )
    label = fmt.labeller(timed)
    spans: list[Span] = ["Fastest at "]
    several = timed["dataset"].nunique() > 1
    for i, r in enumerate(fastest(v).to_dict("records")):
        where = (
            f"{r['dataset']}, batch {r['batch_size']}" if several else f"batch {r['batch_size']}"
        )
        spans += ["; " if i else "", f"{where}: ", Bold(label(r))]
        if not r["separable"]:
            at = (timed["dataset"] == r["dataset"]) & (timed["batch_size"] == r["batch_size"])
            same = timed[at & ~timed["separable"]]
            others = [label(o) for o in same.to_dict("records") if label(o) != label(r)]
            spans.append(f" (not separable from {', '.join(others)}: 95% intervals overlap)")
    ranks = ranking(v).to_dict("records")
    several = timed.groupby(["backend", "device"])["compiler"].nunique().max() > 1
    devices = timed["device"].nunique() > 1

    def who(r: dict) -> str:
        where = f" on the {r['device']}" if devices else ""
        return f"{r['backend']}{where}" + (f" (via {r['paths']})" if several else "")

    ranked = ", ".join(f"{who(r)} {r['relative']:.2f}" for r in ranks)
    spans.append(
        ". Speed relative to the fastest, geometric mean over batch sizes"
        + (", each backend at its fastest measured path" if several else "")
        + f": {ranked}."
    )
    return para(*spans, cls="headline")


def display(v: pd.DataFrame, target: float, have_curves: bool = True) -> pd.DataFrame:
    """The verdict table as the page and the console show it (``have_curves``: whether
    curves.parquet was there, so that a missing time to target can say "not reached")."""
    rows = []
    for r in v.to_dict("records"):
        reached = r["target_time_s"] == r["target_time_s"]
        rows.append(
            {
                "dataset": r["dataset"],
                "batch": int(r["batch_size"]),
                "backend": r["backend"],
                "mode": r["mode"],
                "compiler": r["compiler"],
                "device": r["device"],
                "median samples/s": fmt.num(r["samples_per_s"]),
                "95% interval": fmt.interval(r["ci_low"], r["ci_high"])
                if r["ci_low"] == r["ci_low"]
                else "-",
                "× fastest": fmt.num(r["relative"], ".2f"),
                "TFLOP/s": fmt.sig(r["tflops"]),
                "of peak": fmt.num(100 * r["fraction_of_peak"], ".0f") + "%"
                if r["fraction_of_peak"] == r["fraction_of_peak"]
                else "-",
                "first step": fmt.secs(r["compile_s"]),
                "best acc": fmt.num(r["best_test_acc"], ".3f"),
                "best at": fmt.cfg(r["best_optimizer"], r["best_lr"]),
                f"time to {target:.2f}": fmt.secs(r["target_time_s"])
                if reached
                else "not reached"
                if have_curves
                else "-",
                "steps": fmt.num(r["target_steps"], ".0f"),
                "reached with": fmt.cfg(r["target_optimizer"], r["target_lr"]),
                "ok / div / fail": f"{r['ok']} / {r['diverged']} / {r['failed'] + r['skipped']}",
            }
        )
    return pd.DataFrame(rows)
