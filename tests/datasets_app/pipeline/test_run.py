"""run_pipeline end to end: steps in order with honest counts, deterministic output, replay, pinned test, failures."""

import random
from dataclasses import replace

import pytest

from datasets_app.pii import SensitiveWords
from datasets_app.pipeline import run
from datasets_app.pipeline.recipe import Recipe
from datasets_app.pipeline.run import run_pipeline
from datasets_app.pipeline.types import BuildError, Example, StepStats

HAN = [chr(0x4E00 + i) for i in range(2500)]
CATEGORIES = ("billing", "shipping", "account")


def chat(user: str, answer: str, line: int, category: str = "", origin: str = "file") -> Example:
    messages = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": user},
                {"role": "assistant", "content": answer}]  # fmt: skip
    return Example(
        "chat", {"messages": messages}, origin, {"file": "a.jsonl", "line": line}, category=category
    )


def rows(n: int, seed: int = 0) -> list[Example]:
    """Chinese and English rows; every 10th repeats an earlier one with a small edit, every 25th exactly."""
    rng, out = random.Random(seed), []
    for i in range(n):
        if i and i % 25 == 0:
            source = out[rng.randrange(i)]
            out.append(
                chat(source.fields["messages"][1]["content"], source.fields["messages"][2]["content"], i)
            )
        elif i and i % 10 == 0:
            source = out[rng.randrange(i)]
            answer = source.fields["messages"][2]["content"]
            out.append(chat(source.fields["messages"][1]["content"], answer[:-3] + answer[-2:], i))
        elif i % 2:
            out.append(chat("".join(rng.choices(HAN, k=20)) + "？", "".join(rng.choices(HAN, k=80)) + "。", i,
                            CATEGORIES[i % 3]))  # fmt: skip
        else:
            out.append(chat(" ".join(f"q{rng.randrange(10**5)}" for _ in range(10)) + "?",
                            " ".join(f"a{rng.randrange(10**5)}" for _ in range(30)) + ".", i, CATEGORIES[i % 3]))  # fmt: skip
    return out


def recipe(**steps) -> Recipe:
    return Recipe.from_dict({"task_type": "chat", "sources": {"files": [1]}, "steps": steps})


def test_it_runs_every_step_in_order_and_counts_what_each_passed_on(tmp_path):
    source = rows(600)
    source[5].fields["messages"][2]["content"] = "哈哈哈哈哈哈哈哈哈哈"
    source[7].fields["messages"][1]["content"] = "我的机密订单"
    result = run_pipeline(
        iter(source), recipe(), spool_dir=tmp_path, words=SensitiveWords([("机密", "mask")])
    )
    steps = {s.name: s for s in result.steps}

    assert [s.name for s in result.steps] == [
        "normalise",
        "filter",
        "sensitive",
        "integrity",
        "dedup",
        "split",
        "augment",
    ]
    assert steps["filter"].dropped == {"repetition": 1}
    assert steps["sensitive"].notes == ["1 rows with sensitive words masked"]
    assert steps["dedup"].dropped["exact_duplicate"] >= 20 and steps["dedup"].dropped["near_duplicate"] >= 30
    assert len(steps["dedup"].examples["near_duplicate"]) == 5
    for before, after in zip(result.steps, result.steps[1:], strict=False):
        assert after.rows_in == before.rows_out
        assert before.rows_in - before.rows_out == sum(before.dropped.values())
    built = list(result.examples)
    assert len(built) == len(result.examples) == steps["augment"].rows_out
    assert all(s.seconds >= 0 for s in result.steps)
    assert {e.split for e in built} == {"train", "validation", "test"}
    assert any("**" in e.fields["messages"][1]["content"] for e in built)


def test_it_gives_the_same_rows_in_the_same_order_every_time(tmp_path):
    first = run_pipeline(rows(400), recipe(), spool_dir=tmp_path / "one")
    second = run_pipeline(rows(400), recipe(), spool_dir=tmp_path / "two")

    assert list(first.examples) == list(second.examples)
    assert list(first.examples) == list(first.examples)  # the result can be read again
    assert [s.as_dict()["dropped"] for s in first.steps] == [s.as_dict()["dropped"] for s in second.steps]


def test_it_keeps_input_order_and_sets_groups_and_keys(tmp_path):
    built = list(run_pipeline(rows(300), recipe(), spool_dir=tmp_path).examples)

    lines = [e.ref["line"] for e in built]
    assert lines == sorted(lines)
    assert len({e.group for e in built}) == len(built)
    assert all(len(e.key) == 64 and e.tokens > 0 for e in built)


@pytest.mark.parametrize("chunk", [None, 50])  # 50: eleven parts matched, five of them in a forked child
def test_it_shows_no_leakage_of_test_into_training_by_construction(tmp_path, monkeypatch, chunk):
    if chunk:
        monkeypatch.setattr(run, "CHUNK", chunk)
    result = run_pipeline(rows(600), recipe(), spool_dir=tmp_path)
    test = sum(1 for e in result.examples if e.split == "test")

    assert result.leakage == {"exact": 0, "near": 0, "examples": [], "checked_test": test,
                              "checked_train": len(result.examples) - test}  # fmt: skip


def test_it_fails_with_the_counts_of_every_step_when_nothing_is_left(tmp_path):
    with pytest.raises(BuildError) as caught:
        run_pipeline(rows(30), recipe(filter={"min_tokens": 1000, "max_tokens": 2000}), spool_dir=tmp_path)

    assert (
        str(caught.value)
        == "no rows left after filter: normalise 30 in, 30 out; filter 30 in, 0 out (too_short 30)"
    )


def test_it_fails_when_the_sources_hold_no_rows(tmp_path):
    with pytest.raises(BuildError, match="no rows left after reading the sources"):
        run_pipeline([], recipe(), spool_dir=tmp_path)


def test_it_refuses_rows_of_another_task_type(tmp_path):
    wrong = Example("classification", {"text": "好评", "label": "pos"}, "file", {"line": 3})

    with pytest.raises(BuildError, match="a source row is a classification row, the recipe builds chat rows"):
        run_pipeline(rows(5) + [wrong], recipe(), spool_dir=tmp_path)


def test_it_adds_replay_rows_at_the_recipe_ratio_to_train(tmp_path):
    general = [replace(e, origin="version") for e in rows(500, seed=4) if e.ref["line"] % 5]
    replayed = Recipe.from_dict(
        {"task_type": "chat", "sources": {"files": [1], "replay": {"version": 3, "ratio": 0.5}}}
    )

    result = run_pipeline(rows(200), replayed, spool_dir=tmp_path, replay=general)
    built = list(result.examples)

    replay = [e for e in built if e.origin == "replay"]
    steps = {s.name: s for s in result.steps}
    assert len(replay) == 100 == steps["replay"].rows_out
    assert all(e.tokens > 0 for e in replay)
    assert steps["replay"].notes == ["100 replay rows added for 200 task rows (ratio 0.5)"]
    assert {e.split for e in replay} == {"train"}
    assert built[-100:] == replay


def test_it_reuses_a_pinned_test_split_and_drops_rows_repeating_it(tmp_path):
    earlier = rows(100, seed=9)[:20]
    for example in earlier:
        example.split, example.origin = "test", "version"
    source = rows(300) + [
        chat(earlier[0].fields["messages"][1]["content"], earlier[0].fields["messages"][2]["content"], 999)
    ]
    pinned_recipe = recipe(split={"pinned_test_version": 2})

    result = run_pipeline(source, pinned_recipe, spool_dir=tmp_path, pinned_test=earlier)
    built = list(result.examples)

    assert [e for e in built if e.split == "test"] == built[-20:]
    assert [e.fields for e in built[-20:]] == [e.fields for e in earlier]
    assert {e.split for e in built[:-20]} == {"train", "validation"}
    assert {s.name: s for s in result.steps}["split"].dropped == {"leaks_pinned_test": 1}
    assert result.leakage["exact"] == result.leakage["near"] == 0 and result.leakage["checked_test"] == 20


def test_it_reports_progress_up_to_done(tmp_path):
    seen = []
    run_pipeline(rows(100), recipe(), spool_dir=tmp_path, progress=lambda f, m: seen.append((f, m)))

    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert seen[-1][1].endswith("rows built")


def test_it_stops_when_progress_raises(tmp_path):
    class Cancelled(Exception):
        pass

    def cancel(fraction, message):
        raise Cancelled

    with pytest.raises(Cancelled):
        run_pipeline(rows(100), recipe(), spool_dir=tmp_path, progress=cancel)


def test_the_step_processes_count_and_keep_dropped_examples_as_one_process_would(tmp_path, monkeypatch):
    def source() -> list[Example]:
        out = rows(600)
        for i in (5, 47, 130, 333, 402, 480, 555):  # in 7 batches of 40, dealt to both processes
            out[i].fields["messages"][2]["content"] = "哈哈" * (6 + i % 5)
        for i in (7, 90, 250):
            out[i].fields["messages"][1]["content"] = f"我的机密订单 {i}"
        return out

    words = SensitiveWords([("机密", "mask")])
    monkeypatch.setattr(run, "BATCH", 40)
    result = run_pipeline(iter(source()), recipe(), spool_dir=tmp_path, words=words)
    steps = run._Build(recipe(), tmp_path / "one", words, lambda *a: None, None).stream_steps
    batch, expected = source(), {}
    for step in steps:  # every row through each step in this process, in one call
        expected[step.name] = StepStats(step.name)
        batch = list(step(batch, expected[step.name]))

    got = {s.name: {**s.as_dict(), "seconds": 0} for s in result.steps}
    assert [got[name] for name in expected] == [{**s.as_dict(), "seconds": 0} for s in expected.values()]
    assert [e["ref"]["line"] for e in got["filter"]["examples"]["repetition"]] == [5, 47, 130, 333, 402]
    assert got["filter"]["dropped"] == {"repetition": 7} and got["normalise"]["notes"]


def test_an_error_in_a_step_process_is_raised_here_and_no_step_process_is_left(tmp_path, monkeypatch):
    import psutil

    from datasets_app.pipeline.filters import Filter

    def broken(self, example: Example) -> str:
        if example.ref["line"] == 450:  # batch 11 of 40 rows: the second process's
            raise BuildError("the tokenizer broke on line 450")
        return ""

    monkeypatch.setattr(Filter, "reason", broken)
    monkeypatch.setattr(run, "BATCH", 40)
    with pytest.raises(BuildError, match="line 450"):
        run_pipeline(iter(rows(600)), recipe(), spool_dir=tmp_path)
    assert psutil.Process().children() == []
