"""PyTorch: ``nn.Sequential`` MLP, torch autograd and the stock ``torch.optim`` optimizers.

``sgd`` is ``torch.optim.SGD`` (dampening 0, coupled L2 weight decay) and ``adam`` is
``torch.optim.AdamW`` (decoupled weight decay; 0 gives Adam), both as documented on
:class:`~backends.base.OptimizerSpec`, always the fused implementation. Paths (the registry
lists them): ``eager``; ``inductor``, the forward pass and loss through ``torch.compile``
(AOTAutograd compiles the matching backward; the optimizer stays the fused kernel); and on a
GPU ``cudagraph``, the whole step captured once in a CUDA graph and replayed.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.base import Backend, BackendInfo, ModelSpec, OptimizerSpec, Weights, for_kind

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


# fused: the whole update in one native kernel per tensor, no per-op dispatch. On the CPU it
# measured faster than the for-loop and foreach implementations (there a loop of small ops).
# capturable: Adam keeps its step count on the device, as a CUDA graph needs (SGD has no
# host-side state and takes no such flag).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, o, capturable: torch.optim.SGD(
        params,
        lr=o.lr,
        momentum=o.momentum,
        dampening=0.0,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
        fused=True,
    ),
    # AdamW: decoupled weight decay as the spec (weight_decay=0 gives Adam)
    "adam": lambda params, o, capturable: torch.optim.AdamW(
        params,
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        weight_decay=o.weight_decay,
        fused=True,
        capturable=capturable,
    ),
}


class GraphedStep:
    """The whole step (forward, backward, optimizer update) captured in one CUDA graph at
    the first batch, then replayed: one launch per step instead of dozens, which is what
    small steps on a GPU wait on. Batches are copied into static input buffers, and the
    loss lives in a static buffer that each replay overwrites (callers get a copy)."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer):
        self.module, self.optimizer = module, optimizer
        self.graph: torch.cuda.CUDAGraph | None = None

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = _forward_loss(self.module, x, y)
        loss.backward()
        self.optimizer.step()
        return loss

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        params = list(self.module.parameters())
        initial = [p.detach().clone() for p in params]
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
        # ...then undo the warm-up, in place (the graph keeps these addresses): the
        # weights back to the initial ones, every slot (momentum, moments, step) to zero,
        # which is each optimizer's state before its first step.
        with torch.no_grad():
            for p, p0 in zip(params, initial):
                p.copy_(p0)
            for slots in self.optimizer.state.values():
                for v in slots.values():
                    if torch.is_tensor(v):
                        v.zero_()
        self.optimizer.zero_grad(set_to_none=True)  # backward allocates grads in the graph
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = self._step(self.x, self.y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            self._capture(x, y)
        else:
            self.x.copy_(x)
            self.y.copy_(y)
        self.graph.replay()
        return self.loss.detach().clone()


@dataclass
class TorchState:
    model: nn.Sequential
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    graphed: GraphedStep | None = None


class TorchBackend(Backend):
    name = "torch"
    extra = "torch"
    dtypes = ("float32", "float64")
    bare = "backends.torch.bare:bare_loops"
    kinds = tuple(OPTIMIZERS)

    def __init__(
        self,
        mode: str = "compiled",
        device: str = "cpu",
        dtype: str = "float32",
        compiler: str | None = None,
    ):
        super().__init__(mode=mode, device=device, dtype=dtype, compiler=compiler)
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

        graphed = self.path.name == "cudagraph"
        make = for_kind(OPTIMIZERS, opt.kind, "the torch backend")
        optimizer = make(module.parameters(), opt, graphed)
        if self.path.name == "inductor":
            loss_fn = _compiled_loss((tuple(sizes), self.dtype, str(self._device)))
        else:
            loss_fn = _forward_loss
        return TorchState(
            module, optimizer, loss_fn, GraphedStep(module, optimizer) if graphed else None
        )

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
        return BackendInfo(
            name=self.name,
            framework="torch",
            version=torch.__version__,
            device=self.device,
            mode=self.mode,
            dtype=self.dtype,
            compiler=self.path.name,
            compiler_detail=self.path.detail,
            extra={
                "threads": torch.get_num_threads(),
                "matmul_precision": torch.get_float32_matmul_precision(),
                "optimizer_impl": "fused",
            },
        )

    def peak_memory_mb(self) -> float | None:
        if self._device.type == "cuda":
            return torch.cuda.max_memory_allocated(self._device) / 2**20
        return None
