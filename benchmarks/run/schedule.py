"""The block schedule of a run: which steps each timed call covers, in what phase, and where
the run evaluates; a pure function of the run's sizes (no backend, no clock).

The rules (the timing protocol in :mod:`benchmarks.run.runner`): the first step is a block
of its own (``compile``); the steps up to :func:`~benchmarks.record.schema.warmup_end` are
``warmup`` blocks of at most ``block_steps``; the rest are ``timed`` blocks of
``block_steps``. Every block also ends at an epoch's end, at the run's last step and (after
the first step) at a multiple of ``eval_every``; the run evaluates after a block that ends
an epoch, the run, or on a multiple of ``eval_every``.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.record.schema import PHASES, warmup_end

COMPILE, WARMUP, TIMED = PHASES  # a block's phase (the timings' ``phase`` column), in order


@dataclass(frozen=True)
class Block:
    """One call of ``train_steps``: ``steps`` consecutive steps from ``start`` (the steps
    the run made before it), batches ``offset`` on of epoch ``epoch``'s."""

    index: int
    epoch: int
    offset: int
    start: int
    steps: int
    phase: str
    evaluate: bool  # evaluate after it (an epoch's or the run's end, or an eval point)

    @property
    def end(self) -> int:
        """The steps made after it."""
        return self.start + self.steps


def block_schedule(
    total: int,
    steps_per_epoch: int,
    block_steps: int,
    warmup_steps: int,
    eval_every: int = 0,
) -> list[Block]:
    """Every block of a run of ``total`` steps with ``steps_per_epoch`` batches an epoch.

    >>> [(b.start, b.steps, b.phase) for b in block_schedule(7, 10, 2, 1)]
    [(0, 1, 'compile'), (1, 1, 'warmup'), (2, 2, 'timed'), (4, 2, 'timed'), (6, 1, 'timed')]
    """
    if steps_per_epoch < 1 or block_steps < 1:
        raise ValueError(
            f"steps_per_epoch={steps_per_epoch} and block_steps={block_steps} must be at least 1"
        )
    timed_from = warmup_end(warmup_steps, block_steps)
    blocks: list[Block] = []
    step = 0
    epoch = 0
    while step < total:
        offset = 0
        while offset < steps_per_epoch and step < total:
            if step == 0:
                n, phase = 1, COMPILE
            elif step < timed_from:
                n, phase = min(timed_from - step, block_steps), WARMUP
            else:
                n, phase = block_steps, TIMED
            n = min(n, steps_per_epoch - offset, total - step)
            if eval_every and step:  # end blocks on evaluation points
                n = min(n, eval_every - step % eval_every)
            end = step + n
            at_epoch_end = offset + n >= steps_per_epoch or end >= total
            evaluate = at_epoch_end or bool(eval_every and end % eval_every == 0)
            blocks.append(Block(len(blocks), epoch, offset, step, n, phase, evaluate))
            step, offset = end, offset + n
        epoch += 1
    return blocks


def full_block_steps(block_steps: int, steps_per_epoch: int) -> int:
    """A full block's steps: ``block_steps``, or a whole epoch if shorter (the rate's rule
    leaves out blocks under half of it: :func:`benchmarks.core.stats.block_rates`)."""
    return min(block_steps, steps_per_epoch)
