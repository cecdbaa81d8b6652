"""PyTorch: ``nn.Sequential`` MLP, torch autograd and the stock ``torch.optim`` optimizers.

The ``spec`` variant maps every kind of :data:`~backends.base.KINDS` to its ``torch.optim``
optimizer with every hyperparameter from the spec: ``sgd`` is ``SGD`` (dampening 0, coupled
L2 weight decay), ``adam`` is ``AdamW`` (decoupled weight decay; 0 gives Adam), ``rmsprop`` is
``RMSprop`` (``alpha`` is the spec's ``rho``) and ``adagrad`` is ``Adagrad`` (``lr_decay`` 0);
the ``stock`` variant is the same classes at torch's defaults, given only
:func:`~backends.base.stock_arguments`. A learning-rate schedule sets each update's lr from
``OptimizerSpec.lr_table()``; a constant one leaves ``lr`` a plain number. Paths (the
registry lists them): ``eager``; ``inductor``, the forward pass and loss through
``torch.compile`` (AOTAutograd compiles the matching backward; the optimizer stays the fused
kernel); and on a GPU ``cudagraph``, the whole step captured once in a CUDA graph and replayed.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.base import (
    Backend,
    BackendInfo,
    ModelSpec,
    OptimizerSpec,
    Weights,
    for_kind,
    stock_arguments,
)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _forward_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


_COMPILED: dict[tuple, LossFn] = {}


def _compiled_loss(key: tuple) -> LossFn:
    """``torch.compile(_forward_loss)``, one per (layer sizes, dtype, device), shared by runs.

    The module is an argument, not a closure, so a new run's module of the same shapes passes
    the guards and reuses the graph instead of recompiling. Dynamo keeps its cache on the code
    object, and past ``recompile_limit`` (8) entries it warns and runs eager from then on, so
    each key gets its own copy of the code: a sweep over many architectures never hits the
    limit (batch sizes of one architecture share a copy; ``dynamic=False`` gives each its own
    static graph).
    """
    fn = _COMPILED.get(key)
    if fn is None:
        code = _forward_loss.__code__.replace(co_name=f"_forward_loss_{len(_COMPILED)}")
        fresh = types.FunctionType(code, _forward_loss.__globals__, code.co_name)
        fn = _COMPILED[key] = torch.compile(fresh, dynamic=False, fullgraph=True)
    return fn


# Implementations: fused (the whole update in one native kernel per tensor, no per-op
# dispatch) wherever torch has it. On the CPU it measured faster than the for-loop and
# foreach implementations (there a loop of small ops): Adagrad's step at 784-64-10, one
# thread, best of 3, 65 us fused, 117 us for-loop, 165 us foreach. RMSprop has no fused
# kernel: foreach, which measured as fast as the for-loop on the CPU (131 vs 140 us; centered
# with momentum 257 vs 257 us) and is the multi-tensor path on a GPU.
# capturable: Adam and RMSprop keep their step count on the device, as a CUDA graph needs
# (SGD has no host-side state; fused Adagrad keeps its step on the device anyway).
# Adagrad's fused kernel is CPU-only before torch 2.12 (pytorch#177672 adds CUDA); there the
# foreach implementation runs, which reads its step on the host (`.item()`) and so cannot be
# captured: see _graph_update.
# ``lr`` is a float, or on the cudagraph path with a schedule a 0-d float32 device tensor
# (see DeviceLR) that every one of these implementations reads on the device.
# The stock variant uses the same implementations: they change the speed, not the numbers,
# so spec and stock rows differ only by the hyperparameters.


def _spec_sgd(params, o: OptimizerSpec, lr, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=o.momentum,
        dampening=0.0,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
        fused=True,
    )


def _spec_adam(params, o: OptimizerSpec, lr, capturable: bool) -> torch.optim.Optimizer:
    # AdamW: decoupled weight decay as the spec (weight_decay=0 gives Adam)
    return torch.optim.AdamW(
        params,
        lr=lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        weight_decay=o.weight_decay,
        fused=True,
        capturable=capturable,
    )


def _spec_rmsprop(params, o: OptimizerSpec, lr, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        params,
        lr=lr,
        alpha=o.rho,
        eps=o.eps,
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        centered=o.centered,
        foreach=True,
        capturable=capturable,
    )


def _spec_adagrad(params, o: OptimizerSpec, lr, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(
        params,
        lr=lr,
        lr_decay=0.0,
        weight_decay=o.weight_decay,
        initial_accumulator_value=o.initial_accumulator,
        eps=o.eps,
        **_adagrad_impl(params),
    )


# The stock variant: torch's defaults for everything stock_arguments leaves out (docs/methodology.md,
# "What the stock defaults change"): SGD and RMSprop without weight decay, RMSprop's alpha
# 0.99, Adagrad's eps 1e-10 and no initial accumulator, AdamW's weight_decay 0.01.


def _stock_sgd(params, a: dict[str, Any], lr, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=lr, momentum=a["momentum"], nesterov=a["nesterov"], fused=True
    )


def _stock_adam(params, a: dict[str, Any], lr, capturable: bool) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if a["adamw"] else torch.optim.Adam
    return cls(params, lr=lr, fused=True, capturable=capturable)


def _stock_rmsprop(params, a: dict[str, Any], lr, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        params,
        lr=lr,
        momentum=a["momentum"],
        centered=a["centered"],
        foreach=True,
        capturable=capturable,
    )


def _stock_adagrad(params, a: dict[str, Any], lr, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=lr, **_adagrad_impl(params))


@functools.cache
def _fused_adagrad_on(device_type: str) -> bool:
    """Whether this torch has Adagrad's fused kernel on ``device_type`` (asked by trying it:
    CPU always, CUDA from torch 2.12)."""
    if device_type == "cpu":
        return True
    p = torch.zeros(1, device=device_type, requires_grad=True)
    p.grad = torch.ones(1, device=device_type)
    try:
        torch.optim.Adagrad([p], lr=0.1, fused=True).step()
    except (RuntimeError, NotImplementedError):
        return False
    return True


def _adagrad_impl(params: list[torch.Tensor]) -> dict[str, bool]:
    return {"fused": True} if _fused_adagrad_on(params[0].device.type) else {"foreach": True}


def _graph_update(kind: str, device: torch.device) -> bool:
    """Whether the optimizer's update can be captured in the CUDA graph with the rest of the
    step (every kind but Adagrad without its fused CUDA kernel; there the graph holds the
    forward and backward, and the update runs eagerly after each replay)."""
    return kind != "adagrad" or _fused_adagrad_on(device.type)


#: variant -> kind -> ``(params, spec or stock_arguments, lr, capturable) -> optimizer``
OPTIMIZERS: dict[str, dict[str, Callable[..., torch.optim.Optimizer]]] = {
    "spec": {
        "sgd": _spec_sgd,
        "adam": _spec_adam,
        "rmsprop": _spec_rmsprop,
        "adagrad": _spec_adagrad,
    },
    "stock": {
        "sgd": _stock_sgd,
        "adam": _stock_adam,
        "rmsprop": _stock_rmsprop,
        "adagrad": _stock_adagrad,
    },
}


def make_optimizer(
    params,
    opt: OptimizerSpec,
    variant: str = "spec",
    lr: float | torch.Tensor | None = None,
    capturable: bool = False,
) -> torch.optim.Optimizer:
    """The kind's ``torch.optim`` optimizer in ``variant``, at ``lr`` (``opt.lr`` if None);
    a plugin's from its factory (``make(params, hp, lr)``)."""
    if opt.plugin is not None:
        make_plugin = opt.plugin.factory("torch", variant)
        return make_plugin(list(params), dict(opt.params), opt.lr if lr is None else lr)
    make = for_kind(OPTIMIZERS[variant], opt.kind, f"the torch backend ({variant})")
    args = opt if variant == "spec" else stock_arguments(opt)
    return make(list(params), args, opt.lr if lr is None else lr, capturable)


class HostLR:
    """A schedule on the eager and inductor paths: before each update, every param group's
    lr is set to the table's value for it, as ``torch.optim.lr_scheduler`` does (the table
    is the spec's own, so the numbers are the reference's; past the horizon the last holds)."""

    def __init__(self, table: np.ndarray):
        self.table = table.tolist()
        self.updates = 0

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        lr = self.table[min(self.updates, len(self.table) - 1)]
        self.updates += 1
        for group in optimizer.param_groups:
            group["lr"] = lr


class DeviceLR:
    """A schedule inside a CUDA graph, where no host value can change between replays: the
    table and the count of updates live on the device, and each replay counts one more
    update and copies its lr into the 0-d tensor the optimizer was built with.

    float32 whatever the weights' dtype: torch's fused CUDA kernels read a tensor lr as
    ``const float*`` (``fused_adam_utils.cuh``), so a float64 run here takes float32 lrs.
    """

    def __init__(self, table: np.ndarray, device: torch.device):
        self.table = torch.tensor(table, dtype=torch.float32, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.lr = self.table[0].clone()

    def advance(self) -> None:
        self.count += 1
        i = self.count.clamp(max=len(self.table)) - 1  # past the horizon the last holds
        self.lr.copy_(self.table.index_select(0, i.view(1)).view(()))


class GraphedStep:
    """The whole step (forward, backward, optimizer update) captured in one CUDA graph at
    the first batch, then replayed: one launch per step instead of dozens, which is what
    small steps on a GPU wait on. Batches are copied into static input buffers, and the
    loss lives in a static buffer that each replay overwrites (callers get a copy). A
    schedule (``lr``) is advanced inside the graph, before the update.

    With ``host_lr`` (an optimizer whose update cannot be captured, see
    :func:`_graph_update`) the graph holds the forward and backward only; the gradients it
    leaves in its static buffers are applied by an eager update after each replay, its
    schedule set from the host."""

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        lr: DeviceLR | None = None,
        host_lr: HostLR | None = None,
        update_in_graph: bool = True,
    ):
        self.module, self.optimizer, self.lr, self.host_lr = module, optimizer, lr, host_lr
        self.update_in_graph = update_in_graph
        self.graph: torch.cuda.CUDAGraph | None = None

    def _step(self, x: torch.Tensor, y: torch.Tensor, update: bool = True) -> torch.Tensor:
        loss = _forward_loss(self.module, x, y)
        loss.backward()
        if update:
            if self.lr is not None:
                self.lr.advance()
            self.optimizer.step()
        return loss

    def _tensors(self) -> list[torch.Tensor]:
        """Every tensor of the optimizer's state (slots and step counts) and the schedule's
        count: what the warm-up changes besides the weights."""
        out = [v for slots in self.optimizer.state.values() for v in slots.values()]
        out += [self.lr.count] if self.lr is not None else []
        return [v for v in out if torch.is_tensor(v)]

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        params = list(self.module.parameters())
        initial = {id(t): t.detach().clone() for t in params + self._tensors()}
        self.x, self.y = x.clone(), y.clone()
        # Warm-up on a side stream before capture (as torch.cuda.graphs' docs require):
        # it creates the optimizer's slots and cuBLAS workspaces outside the graph.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                self._step(self.x, self.y)
        torch.cuda.current_stream().wait_stream(side)
        # ...then undo the warm-up, in place (the graph keeps these addresses): the weights,
        # the schedule's count and every slot that existed before it (Adagrad creates its
        # sums, at initial_accumulator, in its constructor) back to their values; the slots
        # the warm-up created (momentum, moments, step) to zero, each optimizer's state
        # before its first step.
        with torch.no_grad():
            for t in params + self._tensors():
                if id(t) in initial:
                    t.copy_(initial[id(t)])
                else:
                    t.zero_()
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates grads in the graph
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = self._step(self.x, self.y, update=self.update_in_graph)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            self._capture(x, y)
        else:
            self.x.copy_(x)
            self.y.copy_(y)
        self.graph.replay()
        if not self.update_in_graph:
            if self.host_lr is not None:
                self.host_lr.apply(self.optimizer)
            self.optimizer.step()
        return self.loss.detach().clone()


@dataclass
class TorchState:
    model: nn.Sequential
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    graphed: GraphedStep | None = None
    lr: HostLR | None = None  # the schedule on the eager and inductor paths (None: constant)


class TorchBackend(Backend):
    name = "torch"
    kinds = tuple(OPTIMIZERS["spec"])

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
        variant: str = "spec",
    ):
        super().__init__(mode=mode, device=device, dtype=dtype, compiler=compiler, variant=variant)
        self._device = torch.device("cuda:0" if device == "gpu" else "cpu")
        self._dtype = _DTYPES[dtype]
        if device == "gpu":
            # reset_peak_memory_stats (in init) fails with "Invalid device argument" in a
            # process where nothing has initialised CUDA yet
            torch.cuda.init()
            # float32 means float32: no TF32 in matmuls or convolutions.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def init(self, model: ModelSpec, opt: OptimizerSpec, weights: Weights) -> TorchState:
        if self._device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._device)  # peak_memory_mb is per run
        sizes = model.layer_sizes
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(fan_in, fan_out, device=self._device, dtype=self._dtype))
        module = nn.Sequential(*layers)
        linears = [m for m in module if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, weights[0::2], weights[1::2]):
                # shared layout is W (in, out); nn.Linear stores (out, in)
                lin.weight.copy_(torch.as_tensor(np.asarray(w).T, dtype=self._dtype))
                lin.bias.copy_(torch.as_tensor(np.asarray(b), dtype=self._dtype))

        graphed = self.path.cuda_graph
        table = opt.lr_table()
        # a plugin's update runs eagerly after each replay: it need not be capturable
        if graphed and (opt.plugin is not None or not _graph_update(opt.kind, self._device)):
            optimizer = make_optimizer(module.parameters(), opt, self.variant)
            host_lr = None if table is None else HostLR(table)
            step = GraphedStep(module, optimizer, host_lr=host_lr, update_in_graph=False)
            return TorchState(module, optimizer, _forward_loss, graphed=step)
        if graphed:
            device_lr = None if table is None else DeviceLR(table, self._device)
            lr = None if device_lr is None else device_lr.lr
            optimizer = make_optimizer(module.parameters(), opt, self.variant, lr, True)
            step = GraphedStep(module, optimizer, device_lr)
            return TorchState(module, optimizer, _forward_loss, graphed=step)
        optimizer = make_optimizer(module.parameters(), opt, self.variant)
        if self.path.traced:
            loss_fn = _compiled_loss((tuple(sizes), self.dtype, str(self._device)))
        else:
            loss_fn = _forward_loss
        return TorchState(module, optimizer, loss_fn, lr=None if table is None else HostLR(table))

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # torch.tensor copies: staged data never aliases the caller's arrays.
        xt = torch.tensor(np.asarray(x), dtype=self._dtype, device=self._device)
        yt = torch.tensor(np.asarray(y), dtype=torch.int64, device=self._device)
        return xt, yt

    def split_batches(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = (len(y) // batch_size) * batch_size
        return list(zip(x[:n].split(batch_size), y[:n].split(batch_size)))

    def train_step(
        self, state: TorchState, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[TorchState, torch.Tensor]:
        if state.graphed is not None:
            return state, state.graphed(x, y)
        loss = state.loss_fn(state.model, x, y)
        loss.backward()
        if state.lr is not None:
            state.lr.apply(state.optimizer)
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        return state, loss.detach()

    def evaluate(self, state: TorchState, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        # Eager in both modes: evaluation is not timed, and compiling it would add graphs.
        with torch.inference_mode():
            logits = state.model(x)
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(dim=1) == y).to(torch.float64).mean()
        return float(loss), float(acc)

    def get_weights(self, state: TorchState) -> Weights:
        out: Weights = []
        for lin in state.model:
            if isinstance(lin, nn.Linear):
                out.append(lin.weight.detach().cpu().numpy().T.copy())
                out.append(lin.bias.detach().cpu().numpy().copy())
        return out

    def sync(self, value: object) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def to_float(self, value: torch.Tensor) -> float:
        return float(value)

    def describe(self) -> BackendInfo:
        return self.info(
            "torch",
            torch.__version__,
            threads=torch.get_num_threads(),
            matmul_precision=torch.get_float32_matmul_precision(),
            # RMSprop has no fused kernel in torch, Adagrad none on CUDA before 2.12
            optimizer_impl="fused (rmsprop: foreach"
            + ("" if _fused_adagrad_on(self._device.type) else "; adagrad: foreach")
            + ")",
            variant=self.variant,
            blas="cublas" if self._device.type == "cuda" else _cpu_blas(),
        )

    def peak_memory_mb(self) -> float | None:
        if self._device.type == "cuda":
            return torch.cuda.max_memory_allocated(self._device) / 2**20
        return None


def _cpu_blas() -> str:
    """The BLAS torch was built with on the CPU (its build's ``BLAS_INFO``, e.g. "mkl")."""
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else ""
