"""The overhead benchmark's bare loops: what a PyTorch user writes (``nn.Sequential``, a stock
``torch.optim`` optimizer), nothing of ours. Every loop that could be PyTorch's fastest on the
device: eager with the fused optimizer (the CPU's fastest, measured), on the CPU
``torch.compile`` of the forward and loss, and on a GPU the whole step captured in a CUDA
graph as the ``torch.cuda.graphs`` documentation shows (warm-up on a side stream, static
inputs, replay)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from backends.base import OptimizerSpec, Weights, for_kind

OPTIMIZERS = {
    "sgd": lambda p, o, cap: torch.optim.SGD(
        p, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, fused=True
    ),
    "adam": lambda p, o, cap: torch.optim.Adam(
        p, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, fused=True, capturable=cap
    ),
}


def _setup(opt: OptimizerSpec, weights: Weights, dev: torch.device, capturable: bool = False):
    layers: list[torch.nn.Module] = []
    for i, w in enumerate(weights[0::2]):
        layers += [torch.nn.ReLU()] if i else []
        layers.append(torch.nn.Linear(*w.shape, device=dev))
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(torch.from_numpy(w.T.copy() if w.ndim == 2 else w))
    make = for_kind(OPTIMIZERS, opt.kind, "the torch bare loop")
    return model, make(model.parameters(), opt, capturable)


def _loss(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(xb), yb)


@functools.cache
def _compiled_loss() -> Callable:
    """``torch.compile(_loss)``, one for every loop: the model an argument, not a closure, so
    each new loop (the benchmark builds several) reuses the graph where a closure's would
    recompile, and past Dynamo's recompile limit (8) silently run eager."""
    return torch.compile(_loss)


def bare_loops(
    opt: OptimizerSpec, weights: Weights, x: np.ndarray, y: np.ndarray, batch_size: int, device: str
) -> dict[str, Callable[[int], float]]:
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 as the suite runs it
    xs, ys = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    batches = list(zip(xs.split(batch_size), ys.split(batch_size)))[: len(ys) // batch_size]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def plain(compiled: bool) -> Callable[[int], float]:
        model, optim = _setup(opt, weights, dev)
        loss_fn = _compiled_loss() if compiled else _loss

        def block(steps: int) -> float:
            t0 = time.perf_counter()
            for i in range(steps):
                optim.zero_grad(set_to_none=True)
                loss = loss_fn(model, *batches[i % len(batches)])
                loss.backward()
                optim.step()
            sync()
            return time.perf_counter() - t0

        return block

    loops = {"eager_fused": plain(False)}
    if dev.type == "cuda":  # torch.compile measured 7x slower than this there (issue 8)
        loops["cuda_graph"] = _graphed(opt, weights, dev, batches)
    else:
        loops["torch_compile"] = plain(True)
    return loops


def _graphed(opt, weights, dev, batches) -> Callable[[int], float]:
    model, optim = _setup(opt, weights, dev, capturable=True)
    static_x, static_y = batches[0][0].clone(), batches[0][1].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            optim.zero_grad(set_to_none=True)
            F.cross_entropy(model(static_x), static_y).backward()
            optim.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optim.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = F.cross_entropy(model(static_x), static_y)
        static_loss.backward()
        optim.step()

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            xb, yb = batches[i % len(batches)]
            static_x.copy_(xb)
            static_y.copy_(yb)
            graph.replay()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    return block
