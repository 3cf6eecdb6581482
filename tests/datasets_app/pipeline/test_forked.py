import os

import pytest

from datasets_app.pipeline.forked import map_in_two


def test_map_in_two_maps_in_order_with_the_first_half_in_a_child_process():
    out = map_in_two(lambda n: (n * n, os.getpid()), list(range(7)))

    assert [square for square, _ in out] == [n * n for n in range(7)]
    pids = [pid for _, pid in out]
    assert pids[3:] == [os.getpid()] * 4  # the second half here
    assert len(set(pids[:3])) == 1 and pids[0] != os.getpid()  # the first half in one other process


def test_map_in_two_maps_a_single_item_here():
    assert map_in_two(lambda n: (n, os.getpid()), [5]) == [(5, os.getpid())]
    assert map_in_two(lambda n: n, []) == []


def test_map_in_two_raises_the_childs_exception_here():
    def fn(n: int) -> int:
        if n == 0:
            raise ValueError("row 0 is broken")
        return n

    with pytest.raises(ValueError, match="row 0 is broken"):
        map_in_two(fn, [0, 1])
