"""Step g, split: seeded, group-aware, stratified, honest about too-small data, pinned test splits reused."""

import numpy as np
import pytest

from datasets_app.pipeline.recipe import SplitStep
from datasets_app.pipeline.split import TEST, TRAIN, VALIDATION, Split, assign_splits
from datasets_app.pipeline.types import BuildError, Example, StepStats


def row(i: int, category: str = "", group: int = -1, origin: str = "file", **kw) -> Example:
    fields = {"text": f"customer message number {i} about order {i * 7919 % 10007}", "label": category or "x"}
    return Example("classification", fields, origin, {"line": i}, category=category, group=group, **kw)


def split(rows: list[Example], cfg: SplitStep | None = None, pinned=None) -> tuple[list[Example], StepStats]:
    stats = StepStats("split")
    return Split(cfg or SplitStep())(rows, stats, pinned_test=pinned), stats


def test_it_never_puts_one_group_in_two_splits():
    groups = np.repeat(np.arange(300), np.random.default_rng(1).integers(1, 6, 300))
    codes, _ = assign_splits(groups, np.zeros(len(groups), int), np.zeros(len(groups), bool), SplitStep())

    for group in np.unique(groups):
        assert len(set(codes[groups == group].tolist())) == 1


def test_it_meets_the_ratios_as_closely_as_groups_allow():
    codes, notes = assign_splits(np.arange(1000), np.zeros(1000, int), np.zeros(1000, bool), SplitStep())

    assert np.bincount(codes).tolist() == [800, 100, 100]
    assert notes == ["800 train, 100 validation, 100 test rows"]


def test_it_keeps_each_categorys_share_alike_in_every_split():
    categories = np.array([0] * 700 + [1] * 250 + [2] * 50)
    codes, _ = assign_splits(
        np.arange(1000), categories, np.zeros(1000, bool), SplitStep(train=0.6, validation=0.2, test=0.2)
    )

    for code in (TRAIN, VALIDATION, TEST):
        share = np.bincount(categories[codes == code], minlength=3) / np.count_nonzero(codes == code)
        assert share == pytest.approx([0.70, 0.25, 0.05], abs=0.011)


def test_it_is_deterministic_for_a_seed_and_changes_with_it():
    args = (np.arange(500), np.arange(500) % 4, np.zeros(500, bool))

    first, _ = assign_splits(*args, SplitStep(seed=1))
    again, _ = assign_splits(*args, SplitStep(seed=1))
    other, _ = assign_splits(*args, SplitStep(seed=2))

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_it_gives_every_split_with_a_ratio_at_least_one_row():
    rows, stats = split([row(i) for i in range(4)])

    assert sorted(e.split for e in rows) == ["test", "train", "train", "validation"]
    assert stats.notes == ["2 train, 1 validation, 1 test rows"]


def test_it_splits_without_stratifying_when_a_category_is_too_small():
    rows = [row(i, "common") for i in range(40)] + [row(40, "rare"), row(41, "rare")]
    rows, stats = split(rows)

    assert stats.notes[1] == "not stratified: 1 category has fewer groups than the 3 splits to fill"
    assert {e.split for e in rows} == {"train", "validation", "test"}


def test_it_refuses_data_too_small_for_the_splits():
    with pytest.raises(BuildError, match="2 rows in 2 groups cannot fill 3 splits"):
        split([row(0), row(1)])
    with pytest.raises(BuildError, match="3 rows in 1 group cannot fill 3 splits"):
        split([row(i, group=5) for i in range(3)])

    rows, _ = split([row(0), row(1)], SplitStep(train=0.5, validation=0.5, test=0))
    assert sorted(e.split for e in rows) == ["train", "validation"]


def test_it_puts_augmented_and_replay_rows_and_their_groups_in_train():
    rows = [row(i, group=i) for i in range(30)]
    rows += [row(100 + i, group=i, augmented="noise") for i in range(0, 30, 3)]
    rows += [row(200, group=200, origin="replay")]
    rows, _ = split(rows)

    by_group = {}
    for example in rows:
        by_group.setdefault(example.group, set()).add(example.split)
    assert all(by_group[i] == {"train"} for i in range(0, 30, 3))
    assert by_group[200] == {"train"}
    assert {e.split for e in rows} == {"train", "validation", "test"}


def test_it_reuses_a_pinned_test_split_verbatim_and_drops_rows_that_leak_into_it():
    pinned = [row(1000 + i, split="test") for i in range(5)]
    leaking = [Example("classification", dict(pinned[0].fields), "file", {"line": 99}),
               Example("classification", {**pinned[1].fields, "text": pinned[1].fields["text"] + "!"}, "file", {})]  # fmt: skip
    rows, stats = split([row(i) for i in range(20)] + leaking, pinned=pinned)

    test = [e for e in rows if e.split == "test"]
    assert test == pinned
    assert stats.dropped == {"leaks_pinned_test": 2}
    assert len(rows) == 25
    assert {e.split for e in rows if e not in pinned} == {"train", "validation"}
    assert stats.notes[0] == "test split: 5 rows pinned from an earlier version"
