"""Every documented correction of a framework's optimizer (docs/methodology.md, "Where a
framework's optimizer differs from the spec") is needed: removed, parity fails at the gate; in place, it
passes. So the parity tolerance is tight enough for the corrections it claims to check
(at 1e-5, removing optax's bias-correction link still passed).

PyTorch's one difference, the (out, in) weight layout, is not here: without the transpose
the weights do not fit the layers, which every test that builds a model sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from backends import registry
from benchmarks.checks import parity

pytestmark = pytest.mark.slow

CFG = parity.ParityConfig()


@dataclass(frozen=True)
class Correction:
    backend: str
    what: str  # the words of docs/methodology.md's table
    preset: str  # the parity preset that shows it
    remove: Callable[[pytest.MonkeyPatch], None]  # plants the framework's own behaviour


def _jax(monkeypatch: pytest.MonkeyPatch, kind: str, build: Callable) -> None:
    from backends.jax import backend as jb

    monkeypatch.setitem(jb.OPTIMIZERS["spec"], kind, build)
    for cached in (jb._optimizer_and_step, jb._jitted_step, jb._jitted_loop):
        cached.cache_clear()


def _no_bias_fix(mp):
    from backends.jax import backend as jb

    def remove(b1, b2):
        return lambda count: 1.0

    mp.setattr(jb, "_bias_correction_fix", remove)
    _jax(mp, "adam", jb._adam)


def _optax_rmsprop(eps_in_sqrt: bool, lr_inside: bool):
    def build(opt):
        import optax

        from backends.jax import backend as jb

        if lr_inside:  # optax.rmsprop: the lr scales before the momentum trace
            return optax.rmsprop(
                jb._learning_rate(opt), decay=opt.rho, eps=opt.eps, eps_in_sqrt=False,
                centered=opt.centered, momentum=opt.momentum or None,
            )  # fmt: skip
        scale = optax.scale_by_stddev if opt.centered else optax.scale_by_rms
        return optax.chain(
            *jb._l2(opt),
            scale(decay=opt.rho, eps=opt.eps, initial_scale=0.0, eps_in_sqrt=eps_in_sqrt),
            *([optax.trace(decay=opt.momentum)] if opt.momentum else []),
            optax.scale_by_learning_rate(jb._learning_rate(opt)),
        )

    return build


def _optax_adagrad(opt):
    import optax

    from backends.jax import backend as jb

    return optax.chain(
        *jb._l2(opt),
        optax.scale_by_rss(initial_accumulator_value=opt.initial_accumulator, eps=opt.eps),
        optax.scale_by_learning_rate(jb._learning_rate(opt)),
    )


def _keras(monkeypatch: pytest.MonkeyPatch, kind: str, build: Callable) -> None:
    from backends.tensorflow import backend as tfb

    monkeypatch.setitem(tfb.OPTIMIZERS["spec"], kind, build)


def _keras_adam(opt, lr):
    from backends.tensorflow import backend as tfb

    return tfb.keras.optimizers.Adam(lr, beta_1=opt.beta1, beta_2=opt.beta2, epsilon=opt.eps)


def _keras_sgd(opt, lr):
    from backends.tensorflow import backend as tfb

    return tfb.keras.optimizers.SGD(lr, momentum=opt.momentum, nesterov=opt.nesterov)


def _keras_rmsprop(opt, lr):
    from backends.tensorflow import backend as tfb

    return tfb.keras.optimizers.RMSprop(
        lr, rho=opt.rho, momentum=opt.momentum, epsilon=opt.eps, centered=opt.centered
    )


def _keras_adagrad(opt, lr):
    from backends.tensorflow import backend as tfb

    return tfb.keras.optimizers.Adagrad(
        lr, initial_accumulator_value=opt.initial_accumulator, epsilon=opt.eps
    )


def _no_l2(mp):
    from backends.tensorflow import backend as tfb

    mp.setattr(tfb, "_l2_grads", lambda opt, grads, variables: grads)


CORRECTIONS = [
    Correction("jax", "Adam's bias correction 1 - b2^t in float32", "adam", _no_bias_fix),
    Correction(
        "jax", "RMSprop's eps inside the root", "rmsprop",
        lambda mp: _jax(mp, "rmsprop", _optax_rmsprop(eps_in_sqrt=True, lr_inside=False)),
    ),
    Correction(
        "jax", "optax.rmsprop's lr inside the momentum trace", "rmsprop_centered_momentum+cosine",
        lambda mp: _jax(mp, "rmsprop", _optax_rmsprop(eps_in_sqrt=False, lr_inside=True)),
    ),
    Correction(
        "jax", "Adagrad's eps inside the root (optax.scale_by_rss)", "adagrad",
        lambda mp: _jax(mp, "adagrad", _optax_adagrad),
    ),
    Correction(
        "tensorflow", "Adam's epsilon hat and float32 bias corrections", "adam",
        lambda mp: _keras(mp, "adam", _keras_adam),
    ),
    Correction("tensorflow", "weight_decay= is decoupled, the spec's is L2", "sgd_nesterov", _no_l2),
    Correction(
        "tensorflow", "SGD keeps lr inside the momentum buffer", "sgd_momentum+step",
        lambda mp: _keras(mp, "sgd", _keras_sgd),
    ),
    Correction(
        "tensorflow", "RMSprop's eps inside the root, lr inside its momentum",
        "rmsprop_centered_momentum+cosine", lambda mp: _keras(mp, "rmsprop", _keras_rmsprop),
    ),
    Correction(
        "tensorflow", "Adagrad's eps inside the root", "adagrad",
        lambda mp: _keras(mp, "adagrad", _keras_adagrad),
    ),
]  # fmt: skip


def _diff(backend: str, preset: str) -> float:
    """The larger of the loss and weight differences from the float64 reference, on the
    backend's eager path, in this process."""
    cls = registry.load(backend)
    model, batches = parity._batches(CFG)
    ref = parity.reference_trajectories({preset: parity.PRESETS[preset]}, CFG)[preset]
    be = cls("eager", "cpu", "float32")
    got = parity.trajectory(be, model, parity.PRESETS[preset], batches, CFG.seed)
    return max(parity.compare(got, ref))


@pytest.mark.parametrize("c", [pytest.param(c, id=f"{c.backend}: {c.what}") for c in CORRECTIONS])
def test_each_correction_is_needed_at_the_parity_gate(c: Correction, monkeypatch):
    missing = registry.entry(c.backend).missing()
    if missing:
        pytest.skip(f"{c.backend} not installed: {registry.entry(c.backend).install_hint()}")
    assert _diff(c.backend, c.preset) <= CFG.tolerance  # with the correction: within the gate
    c.remove(monkeypatch)
    without = _diff(c.backend, c.preset)
    assert without > CFG.tolerance, (
        f"without {c.what!r}, {c.backend} {c.preset} stays within the gate "
        f"({without:.2e} <= {CFG.tolerance:g}): the gate cannot see it"
    )


def test_every_correction_the_docs_list_has_a_test():
    """The table of corrections in docs/methodology.md, row by row: each optax and Keras row is one of
    CORRECTIONS (by backend), so a new correction without its test fails here."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "methodology.md").read_text()
    table = text.split("| framework | difference | where it is handled |")[1].split("\n\n")[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and "---" not in r]
    per = {"Keras 3": "tensorflow", "optax": "jax"}
    counted = {b: sum(1 for r in rows if r.startswith(f"| {f} |")) for f, b in per.items()}
    have = {b: len({c.preset for c in CORRECTIONS if c.backend == b}) for b in per.values()}
    for backend, n in counted.items():
        assert have[backend] >= n, (backend, n, have[backend])
    assert np.isfinite(CFG.tolerance)
