"""Exports of a dataset version (JSONL, Parquet, a load_from_disk folder) and its content hash, without a database."""

import dataclasses
import hashlib
import json
from pathlib import Path

import datasets
import orjson
import pyarrow.parquet as pq
import pytest

from datasets_app.pipeline import exports
from datasets_app.pipeline.exports import canonical_row, content_sha256, export_all, export_jsonl
from datasets_app.pipeline.sources import read_file
from datasets_app.pipeline.types import SPLITS, Example

ASK = [{"role": "user", "content": "Where is my parcel? 我的包裹在哪？"}]
FIELDS = {
    "chat": [{"messages": [{"role": "system", "content": "Be brief."}, *ASK,
                           {"role": "assistant", "content": "On its way."}]},
             {"messages": [*ASK, {"role": "assistant", "content": "Delivered."}]}],
    "instruction": [{"instruction": "Translate", "input": "cat", "output": "chat"},
                    {"instruction": "Greet", "input": "", "output": "Ahoy", "system": "You are a pirate."}],
    "classification": [{"text": "great", "label": "positive"}, {"text": "awful", "label": "negative"}],
    "preference": [{"prompt": ASK, "chosen": "Tracking says Tuesday.", "rejected": "Dunno."},
                   {"prompt": [{"role": "system", "content": "Be kind."}, *ASK], "chosen": "Soon!", "rejected": "?"}],
}  # fmt: skip


def examples(task_type: str, n: int = 10) -> list[Example]:
    """n examples cycling through the splits train, train, validation, test, ..."""
    order = ["train", "train", "validation", "test"]
    return [Example(task_type, FIELDS[task_type][i % 2], "file", {"file": "f.jsonl", "line": i + 1},
                    split=order[i % 4]) for i in range(n)]  # fmt: skip


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_it_writes_openai_chat_lines_one_file_per_split(tmp_path):
    result = export_all(iter(examples("chat")), tmp_path, "chat")

    assert lines(tmp_path / "jsonl" / "validation.jsonl") == [FIELDS["chat"][0], FIELDS["chat"][0]]
    assert all(set(row) == {"messages"} for row in lines(tmp_path / "jsonl" / "train.jsonl"))
    assert result["jsonl"]["rows"] == {"train": 6, "validation": 2, "test": 2}
    assert sorted(result["jsonl"]["files"]) == ["test.jsonl", "train.jsonl", "validation.jsonl"]


def test_it_writes_alpaca_lines_with_a_system_key_only_when_there_is_one(tmp_path):
    export_all(examples("instruction", 4), tmp_path, "instruction")

    assert lines(tmp_path / "jsonl" / "train.jsonl") == FIELDS["instruction"]
    assert list(lines(tmp_path / "jsonl" / "train.jsonl")[0]) == ["instruction", "input", "output"]


@pytest.mark.parametrize("task_type", ["classification", "preference"])
def test_it_writes_classification_and_preference_lines_as_their_fields(tmp_path, task_type):
    export_all(examples(task_type, 4), tmp_path, task_type)

    assert lines(tmp_path / "jsonl" / "train.jsonl") == FIELDS[task_type]


@pytest.mark.parametrize("task_type", FIELDS)
def test_it_writes_a_folder_that_load_from_disk_opens_with_the_same_rows(tmp_path, task_type):
    result = export_all(iter(examples(task_type)), tmp_path / "out", task_type)

    loaded = datasets.load_from_disk(result["hf"]["path"])

    assert isinstance(loaded, datasets.DatasetDict) and list(loaded) == list(SPLITS)
    for split in SPLITS:
        expected = lines(tmp_path / "out" / "jsonl" / f"{split}.jsonl")
        if task_type == "instruction":  # a column for every row: "" where a line has no system key
            expected = [{**row, "system": row.get("system", "")} for row in expected]
        assert loaded[split].to_list() == expected
        assert (
            loaded[split].to_list()
            == pq.read_table(tmp_path / "out" / "parquet" / f"{split}.parquet").to_pylist()
        )


def test_it_gives_instruction_columns_a_system_column_empty_when_there_is_none(tmp_path):
    export_all(examples("instruction", 2), tmp_path, "instruction")

    assert datasets.load_from_disk(str(tmp_path / "hf"))["train"].to_list() == [
        {"instruction": "Translate", "input": "cat", "output": "chat", "system": ""},
        {"instruction": "Greet", "input": "", "output": "Ahoy", "system": "You are a pirate."},
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_it_reads_its_own_exports_back_as_the_same_fields(tmp_path, fmt):
    export_all(examples("chat"), tmp_path, "chat")
    path = {"jsonl": tmp_path / "jsonl" / "test.jsonl", "parquet": tmp_path / "parquet" / "test.parquet",
            "hf": tmp_path / "hf"}[fmt]  # fmt: skip

    fields = [e.fields for e in read_file(path, name="export", task_type="chat")]

    expected = [e.fields for e in examples("chat") if fmt == "hf" or e.split == "test"]
    assert sorted(map(orjson.dumps, fields)) == sorted(map(orjson.dumps, expected))


def test_it_writes_every_split_even_an_empty_one(tmp_path):
    only_train = [dataclasses.replace(e, split="train") for e in examples("classification")]

    result = export_all(only_train, tmp_path, "classification")

    assert result["parquet"]["rows"] == {"train": 10, "validation": 0, "test": 0}
    assert datasets.load_from_disk(str(tmp_path / "hf"))["test"].num_rows == 0
    assert pq.read_table(tmp_path / "parquet" / "validation.parquet").column_names == ["text", "label"]
    assert (tmp_path / "jsonl" / "test.jsonl").read_bytes() == b""


def test_it_gives_identical_bytes_and_hashes_for_identical_examples(tmp_path):
    first = export_all(examples("preference"), tmp_path / "a", "preference")
    second = export_all(examples("preference"), tmp_path / "b", "preference")

    for fmt in exports.FORMATS:
        assert first[fmt]["sha256"] == second[fmt]["sha256"]
        assert first[fmt]["files"] == second[fmt]["files"]
    assert content_sha256(examples("preference")) == content_sha256(iter(examples("preference")))


def test_it_changes_every_hash_when_one_row_changes(tmp_path):
    changed = examples("chat")
    changed[3] = dataclasses.replace(
        changed[3], fields={"messages": [*ASK, {"role": "assistant", "content": "Lost."}]}
    )

    first = export_all(examples("chat"), tmp_path / "a", "chat")
    second = export_all(changed, tmp_path / "b", "chat")

    assert content_sha256(examples("chat")) != content_sha256(changed)
    assert all(first[fmt]["sha256"] != second[fmt]["sha256"] for fmt in exports.FORMATS)
    assert (
        first["jsonl"]["files"]["train.jsonl"] == second["jsonl"]["files"]["train.jsonl"]
    )  # row 3 is a test row


def test_it_hashes_content_over_split_task_type_fields_and_augmentation_only():
    example = examples("classification", 1)[0]
    moved = dataclasses.replace(example, ref={"case": 1}, category="other", tokens=9, key="k", group=3)

    assert content_sha256([example]) == content_sha256([moved])
    assert content_sha256([example]) != content_sha256([dataclasses.replace(example, augmented="noise")])
    assert content_sha256([example]) != content_sha256([dataclasses.replace(example, split="test")])


def test_it_hashes_the_canonical_json_of_each_row_in_order():
    rows = examples("chat", 3)
    canonical = "".join(json.dumps(canonical_row(e), sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
                        for e in rows)  # fmt: skip

    assert content_sha256(rows) == hashlib.sha256(canonical.encode()).hexdigest()
    assert content_sha256(rows) != content_sha256(rows[::-1])


def test_it_reports_a_folder_hash_anyone_can_recompute_from_the_files(tmp_path):
    result = export_all(examples("chat"), tmp_path, "chat")["hf"]

    manifest = ""
    for path in sorted(p for p in Path(result["path"]).rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest += f"{digest} {path.stat().st_size} {path.relative_to(result['path']).as_posix()}\n"

    assert result["sha256"] == hashlib.sha256(manifest.encode()).hexdigest()
    assert result["bytes"] == sum(p.stat().st_size for p in Path(result["path"]).rglob("*") if p.is_file())
    assert "train/data-00000-of-00001.arrow" in result["files"]


def test_it_splits_large_splits_into_shards_that_still_load(tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "BATCH_ROWS", 2)
    monkeypatch.setattr(exports, "SHARD_BYTES", 1)

    result = export_all(examples("chat", 40), tmp_path, "chat")

    assert "train/data-00009-of-00010.arrow" in result["hf"]["files"]
    assert datasets.load_from_disk(str(tmp_path / "hf"))["train"].to_list() == lines(
        tmp_path / "jsonl" / "train.jsonl"
    )


def test_it_replaces_a_stale_export_in_the_same_folder(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "left-over.txt").write_text("old")

    result = export_all(examples("chat"), tmp_path, "chat")

    assert "left-over.txt" not in result["hf"]["files"]


def test_it_refuses_an_example_without_a_split(tmp_path):
    rows = [dataclasses.replace(examples("chat", 1)[0], split="")]

    with pytest.raises(ValueError, match="split ''"):
        export_all(rows, tmp_path, "chat")


def test_it_exports_one_jsonl_file_of_any_examples(tmp_path):
    result = export_jsonl(examples("classification", 3), tmp_path / "all.jsonl", "classification")

    assert lines(tmp_path / "all.jsonl") == [FIELDS["classification"][i % 2] for i in range(3)]
    assert (
        result["rows"] == 3
        and result["sha256"] == hashlib.sha256((tmp_path / "all.jsonl").read_bytes()).hexdigest()
    )
