"""The minimal optimizer plugin of docs/optimizer-plugins.md: SGD with dampened momentum."""

from backends.optimizers import Hyperparameter, OptimizerKind, Reference


def slots(hp):
    return [("buf", 0.0)]  # one slot per weight, starting at 0


def update(hp, lr, w, g, slots, t):
    (buf,) = slots
    # the first step takes the gradient itself, as torch.optim.SGD does
    buf = g if t == 1 else hp["momentum"] * buf + (1 - hp["dampening"]) * g
    return w - lr * buf, [buf]


def make_torch(params, hp, lr):
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=hp["momentum"], dampening=hp["dampening"])


DAMPENED_SGD = OptimizerKind(
    name="dampened_sgd",
    hyperparameters=(
        Hyperparameter("momentum", 0.9, 0, 1, high_open=True),
        Hyperparameter("dampening", 0.5, 0, 1),
    ),
    formula="buf = g at t = 1, else momentum * buf + (1 - dampening) * g; w -= lr * buf",
    presets={"dampened_sgd": {"lr": 0.05}},
    reference=Reference(slots, update),
    implementations={"torch": make_torch},
)
