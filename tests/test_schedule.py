"""The block schedule (``benchmarks.run.schedule.block_schedule``), a pure function: which
steps each timed call covers, its phase, and where the run evaluates."""

from __future__ import annotations

import pytest

from benchmarks.record.schema import warmup_end
from benchmarks.run.schedule import Block, block_schedule, full_block_steps


def shape(blocks: list[Block]) -> list[tuple[int, int, str, bool]]:
    return [(b.start, b.steps, b.phase, b.evaluate) for b in blocks]


def test_compile_step_alone_then_warmup_then_timed_blocks():
    # warmup_end(3, 4) = 4: steps 1-3 warm up, timed blocks from step 4
    assert shape(block_schedule(14, 100, 4, 3)) == [
        (0, 1, "compile", False),
        (1, 3, "warmup", False),
        (4, 4, "timed", False),
        (8, 4, "timed", False),
        (12, 2, "timed", True),  # the run's last step: evaluated
    ]


def test_warmup_rounds_up_to_a_whole_block_in_blocks_of_at_most_block_steps():
    blocks = block_schedule(40, 100, 4, 9)
    assert warmup_end(9, 4) == 12
    assert [(b.start, b.steps) for b in blocks if b.phase == "warmup"] == [(1, 4), (5, 4), (9, 3)]
    timed = [b for b in blocks if b.phase == "timed"]
    assert timed[0].start == 12 and all(b.start % 4 == 0 for b in timed)


def test_blocks_end_at_epoch_ends_and_each_epoch_starts_at_offset_zero():
    blocks = block_schedule(20, 7, 4, 0)
    assert shape(blocks)[:4] == [
        (0, 1, "compile", False),
        (1, 3, "warmup", False),
        (4, 3, "timed", True),  # epoch 0 ends at step 7: cut short, evaluated
        (7, 4, "timed", False),
    ]
    assert [(b.epoch, b.offset) for b in blocks if b.offset == 0] == [(0, 0), (1, 0), (2, 0)]
    for b in blocks:  # a block never crosses an epoch
        assert b.offset + b.steps <= 7 and b.start == b.epoch * 7 + b.offset


def test_blocks_end_on_evaluation_points():
    blocks = block_schedule(30, 100, 8, 0, eval_every=5)
    ends = [b.end for b in blocks]
    assert {5, 10, 15, 20, 25, 30} <= set(ends)
    assert [b.end for b in blocks if b.evaluate] == [5, 10, 15, 20, 25, 30]
    assert all(b.steps <= 5 for b in blocks)


def test_steps_cover_the_run_once_in_order_and_indices_count_blocks():
    blocks = block_schedule(53, 9, 4, 5, eval_every=6)
    assert sum(b.steps for b in blocks) == 53
    assert [b.index for b in blocks] == list(range(len(blocks)))
    assert all(a.end == b.start for a, b in zip(blocks, blocks[1:]))
    assert blocks[-1].evaluate


def test_a_run_no_longer_than_the_warmup_has_no_timed_block():
    assert [b.phase for b in block_schedule(4, 100, 4, 3)] == ["compile", "warmup"]
    assert block_schedule(0, 10, 4, 0) == []


@pytest.mark.parametrize("spe, bs", [(0, 4), (10, 0)])
def test_sizes_under_one_are_an_error(spe, bs):
    with pytest.raises(ValueError, match="at least 1"):
        block_schedule(10, spe, bs, 0)


def test_full_block_is_block_steps_or_an_epoch_if_shorter():
    assert full_block_steps(8, 100) == 8
    assert full_block_steps(8, 5) == 5
