"""Environment and sweep: the machine, the software, the sweep's grid, and what each
backend's worker reported about itself."""

from __future__ import annotations

from typing import Any

import pandas as pd

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
        blocks += [Heading("Backends as run"), table(as_run)]
    return Section("environment", "Environment and sweep", blocks)


def _kv(pairs: list[tuple[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(k, v) for k, v in pairs if v not in (None, "", [])], columns=["item", "value"]
    )


def _join(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, (list, tuple)) else str(values)


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
        (
            "thread env vars",
            ", ".join(f"{k}={v}" for k, v in (env.get("env") or {}).items())
            or ("none set" if env else ""),
        ),
        ("python", env.get("python")),
        ("packages", versions),
        ("git commit", f"{commit}{dirty}" if git else ""),
        ("host / OS", " / ".join(str(env[k]) for k in ("host", "os") if env.get(k))),
        ("command", " ".join(env.get("command") or [])),
        ("captured", env.get("captured_at")),
    ]


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
        ("seeds", axis("seeds", "seed")),
        ("runs", f"{sweep.get('runs', '?')} planned, {len(runs)} recorded"),
    ]
