"""Environment and sweep: the machine, the software, the sweep's grid, and what each
backend's worker reported about itself."""

from __future__ import annotations

import ast
from typing import Any

import pandas as pd

from backends import registry
from backends.base import SpecError
from benchmarks.report.analysis import Analysis, backends_as_run
from benchmarks.report.document import Columns, Heading, Section, para, table
from benchmarks.report.load import Results

NOT_SHOWN = ("pyarrow", "mlxtend", "scikit-learn")  # packages that do not affect the speed


def build(res: Results, an: Analysis) -> Section:
    blocks = []
    if not res.env:
        blocks.append(
            para(
                "environment.json is missing: the machine and versions were not recorded.",
                cls="warn",
            )
        )
    blocks.append(
        Columns(
            (
                (Heading("Machine and software"), table(_kv(_machine(res.env)), "kv")),
                (Heading("Sweep"), table(_kv(_sweep(res.env, res.runs)), "kv")),
            )
        )
    )
    as_run = backends_as_run(res.runs)
    if not as_run.empty:
        blocks += [Heading("Backends as run"), table(_as_run(as_run, res.env))]
        if "threads_reported" in as_run:
            blocks.append(THREADS_NOTE)
    return Section("environment", "Environment and sweep", blocks)


NOT_REPORTED = "-"
THREADS_NOTE = para(
    "threads: the CPUs each worker was pinned to. threads_reported: the framework's own count "
    "of its pool, as it reports it; 0 is the framework's default, which means the size comes "
    "from the worker env vars named beside it; "
    f"{NOT_REPORTED} where the framework reports none (its pools follow the worker env vars "
    "above and the CPUs the worker is pinned to).",
    cls="note",
)


def worker_env(env: dict[str, Any]) -> dict[str, str]:
    """The thread variables the workers ran with: the run's shell's (``env``), overridden by
    the ones the driver pins in each worker (``worker_env``)."""
    return {**(env.get("env") or {}), **(env.get("worker_env") or {})}


def _as_run(as_run: pd.DataFrame, env: dict[str, Any]) -> pd.DataFrame:
    """``backends_as_run`` with threads_reported said plainly: "-" where the framework reports
    none, a mapping as "key n, ...", and where it reports 0 (its default) the worker env vars
    that decide the size: those its registry entry sets that name threads."""
    if "threads_reported" not in as_run:
        return as_run
    values = worker_env(env)

    def said(backend: str, text: Any) -> str:
        text = "" if text is None or text != text else str(text).strip()
        if not text:
            return NOT_REPORTED
        try:
            got = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        counts = got if isinstance(got, dict) else {"": got}
        shown = ", ".join(f"{k} {v}".strip() for k, v in counts.items())
        if 0 not in counts.values():
            return shown
        try:
            own = [k for k, _ in registry.entry(backend).worker_env if "THREAD" in k]
        except SpecError:  # a backend the registry does not know
            own = []
        by = ", ".join(f"{k}={values[k]}" for k in own if k in values)
        return f"{shown} (0: the default, sized by {by})" if by else f"{shown} (0: the default)"

    return as_run.assign(
        threads_reported=[said(b, t) for b, t in zip(as_run["backend"], as_run["threads_reported"])]
    )


def _kv(pairs: list[tuple[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(k, v) for k, v in pairs if v not in (None, "", [])], columns=["item", "value"]
    )


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, (list, tuple)) else str(values)


def _seeds(settings: dict[str, Any], seeds: str) -> str:
    """The sweep's seeds, and the optimizer verdict's extra seeds on one backend
    (settings ``optimizer_seeds``) where it has some."""
    extra = settings.get("optimizer_seeds") or {}
    if not isinstance(extra, dict) or not extra.get("backend") or not extra.get("seeds"):
        return seeds
    return f"{seeds} ({extra['backend']}: {_join(extra['seeds'])}, for the optimizer verdict)"


def _machine(env: dict[str, Any]) -> list[tuple[str, Any]]:
    gpus = env.get("gpus") or []
    gpu = (
        "; ".join(
            g.get("name", str(g)) + (f" ({g['memory']})" if g.get("memory") else "")
            if isinstance(g, dict)
            else str(g)
            for g in gpus
        )
        or "none"
    )
    git = env.get("git") or {}
    commit = (git.get("commit") or "unknown")[:12]
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)"}.get(git.get("dirty"), "")
    pkgs = env.get("packages") or {}
    versions = ", ".join(f"{k} {v}" for k, v in pkgs.items() if v and k not in NOT_SHOWN)
    cores = f"{env.get('cpu_cores_physical', '?')} physical / {env.get('cpu_cores_logical', '?')} logical"
    return [
        ("CPU", f"{env.get('cpu_model', '?')}, {cores} cores" if env else ""),
        ("GPU", gpu if env else ""),
        ("memory", f"{env['memory_gb']} GB" if env.get("memory_gb") else ""),
        ("threads per worker", env.get("threads_per_worker")),
        _env_vars(env),
        ("python", env.get("python")),
        ("packages", versions),
        ("git commit", f"{commit}{dirty}" if git else ""),
        ("host / OS", " / ".join(str(env[k]) for k in ("host", "os") if env.get(k))),
        ("command", " ".join(env.get("command") or [])),
        ("captured", env.get("captured_at")),
    ]


def _env_vars(env: dict[str, Any]) -> tuple[str, str]:
    """The thread variables the workers ran with (:func:`worker_env`); a folder from before
    they were recorded has only the run's shell's, and says so."""
    if not env:
        return ("thread env vars", "")
    if "worker_env" in env:
        ran = worker_env(env)
        return ("worker env vars", ", ".join(f"{k}={v}" for k, v in ran.items()) or "none set")
    shell = ", ".join(f"{k}={v}" for k, v in (env.get("env") or {}).items()) or "none set"
    return ("thread env vars", f"{shell} (the run's shell; what the workers set was not recorded)")


def _sweep(env: dict[str, Any], runs: pd.DataFrame) -> list[tuple[str, Any]]:
    sweep = env.get("sweep") or {}
    st = sweep.get("settings") or {}

    def axis(key: str, col: str) -> str:
        """The sweep's setting ``key``, else the values the runs hold in ``col``."""
        if st.get(key):
            return _join(st[key])
        return _join(sorted(runs[col].dropna().unique())) if col in runs else ""

    timing = st.get("timing") or {}
    opts = "; ".join(
        f"{name} ({', '.join([o.get('kind', '?')] + [f'{k}={v}' for k, v in (o.get('hyper') or {}).items()])}) "
        f"lr {_join(o.get('learning_rates') or st.get('learning_rates') or [])}"
        for name, o in (st.get("optimizers") or {}).items()
    ) or axis("", "optimizer")
    length = (
        f"{st['epochs']} epochs"
        if st.get("epochs")
        else (f"{st['max_steps']} steps" if st.get("max_steps") else "")
    )
    return [
        ("sweep", f"{sweep.get('name', '?')}: {st.get('description', '')}" if sweep else ""),
        ("source", sweep.get("source")),
        ("dataset", st.get("dataset") or axis("", "dataset")),
        (
            "model",
            f"MLP, hidden {st.get('hidden')}, {st.get('init', '')} init, {st.get('dtype', '')}"
            if st
            else "",
        ),
        (
            "training",
            f"{length}; test evaluation every {st.get('eval_every')} steps and at each epoch end; "
            f"diverged = loss > {st.get('diverge_factor')}x its start or non-finite"
            if st
            else "",
        ),
        (
            "timing",
            f"first step timed alone (compile); {timing.get('warmup_steps')} warm-up steps; "
            f"timed blocks of {timing.get('block_steps')} steps, one device sync each"
            if timing
            else "",
        ),
        ("backends", axis("backends", "backend")),
        ("modes / devices", f"{axis('modes', 'mode')} / {axis('devices', 'device')}"),
        ("optimizers", opts),
        ("batch sizes", axis("batch_sizes", "batch_size")),
        ("seeds", _seeds(st, axis("seeds", "seed"))),
        ("runs", f"{sweep.get('runs', '?')} planned, {len(runs)} recorded"),
    ]
