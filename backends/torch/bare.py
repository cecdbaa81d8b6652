"""The overhead benchmark's bare loop: what a PyTorch user writes (``nn.Sequential``, a stock
``torch.optim`` optimizer, ``torch.compile`` of the forward and loss), nothing of ours."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from backends.base import OptimizerSpec, Weights, for_kind

OPTIMIZERS = {
    "sgd": lambda p, o: torch.optim.SGD(p, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov),
    "adam": lambda p, o: torch.optim.Adam(p, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps),
}


def bare_loop(opt: OptimizerSpec, weights: Weights, x: np.ndarray, y: np.ndarray, batch_size: int):
    layers: list[torch.nn.Module] = []
    for i, w in enumerate(weights[0::2]):
        layers += [torch.nn.ReLU()] if i else []
        layers.append(torch.nn.Linear(*w.shape))
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(torch.from_numpy(w.T.copy() if w.ndim == 2 else w))
    optim = for_kind(OPTIMIZERS, opt.kind, "the torch bare loop")(model.parameters(), opt)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    batches = list(zip(xs.split(batch_size), ys.split(batch_size)))[: len(ys) // batch_size]
    loss_fn = torch.compile(lambda xb, yb: F.cross_entropy(model(xb), yb))

    def block(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            optim.zero_grad(set_to_none=True)
            loss = loss_fn(*batches[i % len(batches)])
            loss.backward()
            optim.step()
        return time.perf_counter() - t0

    return block
