"""Reading uploaded source files (every format × every task type) and mapping error cases, without a database."""

import csv
import json
from pathlib import Path

import datasets
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_app.pipeline.sources import SourceError, example_from_case, read_file
from datasets_app.pipeline.types import BuildError

ORDER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my order?"},
         {"role": "assistant", "content": "It ships today."}]  # fmt: skip
REFUND = [{"role": "user", "content": "退货怎么办？"}, {"role": "assistant", "content": "七天内可以退货。"}]

# Per task type: rows as a data scientist would upload them, and the (fields, category) each becomes.
SAMPLES = {
    "chat": (
        [{"messages": ORDER, "tags": ["shipping", "late"]}, {"messages": REFUND, "tags": []}],
        [({"messages": ORDER}, "shipping"), ({"messages": REFUND}, "")],
    ),
    "instruction": (
        [{"instruction": "Translate to French", "input": "hello", "output": "bonjour", "category": None},
         {"instruction": "Summarise", "input": "", "output": "Short.", "category": "summary"}],
        [({"instruction": "Translate to French", "input": "hello", "output": "bonjour"}, ""),
         ({"instruction": "Summarise", "input": "", "output": "Short."}, "summary")],
    ),
    "classification": (
        [{"text": "great product", "label": 1}, {"text": "arrived broken", "label": 0}],
        [({"text": "great product", "label": "1"}, "1"), ({"text": "arrived broken", "label": "0"}, "0")],
    ),
    "preference": (
        [{"prompt": "Is it safe to eat?", "chosen": "Yes, once cooked.", "rejected": "No idea."},
         {"prompt": "Hi", "chosen": "Hello! How can I help?", "rejected": "What."}],
        [({"prompt": [{"role": "user", "content": "Is it safe to eat?"}], "chosen": "Yes, once cooked.",
           "rejected": "No idea."}, ""),
         ({"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello! How can I help?", "rejected": "What."},
          "")],
    ),
}  # fmt: skip
FORMATS = {"jsonl": [1, 2], "json": [1, 2], "csv": [2, 3], "parquet": [1, 2], "hf": [1, 2], "hf_dict": [1, 2]}


def write(tmp_path: Path, fmt: str, rows: list[dict], name: str = "data") -> Path:
    """The rows as a file of `fmt`, written the way the usual tools write them."""
    if fmt == "jsonl":
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    elif fmt == "json":
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    elif fmt == "csv":
        path = tmp_path / f"{name}.csv"
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([_cell(r.get(c)) for c in columns])
    elif fmt == "parquet":
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "hf":
        path = tmp_path / name
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    elif fmt == "hf_dict":
        path = tmp_path / name
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    return path


def _cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def read(path: Path, task_type: str, name: str | None = None, **kwargs) -> list:
    return list(read_file(path, name=name or path.name, task_type=task_type, **kwargs))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("task_type", SAMPLES)
def test_it_reads_every_format_for_every_task_type(tmp_path, fmt, task_type):
    rows, expected = SAMPLES[task_type]
    path = write(tmp_path, fmt, rows)

    examples = read(path, task_type)

    assert [(e.fields, e.category) for e in examples] == expected
    assert {e.origin for e in examples} == {"file"} and {e.task_type for e in examples} == {task_type}
    split = {"split": "train"} if fmt == "hf_dict" else {}
    assert [e.ref for e in examples] == [{"file": path.name, **split, "line": n} for n in FORMATS[fmt]]


def test_it_reads_sharegpt_conversations_and_their_system_column(tmp_path):
    row = {
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
        "system": "Be kind.",
    }

    [example] = read(write(tmp_path, "jsonl", [row]), "chat")

    assert example.fields == {"messages": [{"role": "system", "content": "Be kind."},
                                           {"role": "user", "content": "hi"},
                                           {"role": "assistant", "content": "hello"}]}  # fmt: skip


def test_it_turns_flat_question_answer_and_alpaca_rows_into_chats(tmp_path):
    rows = [{"question": "2+2?", "answer": "4"}, {"prompt": "Name a colour", "completion": "Blue"},
            {"instruction": "Translate", "input": "cat", "output": "chat", "history": [["hi", "hello"]]}]  # fmt: skip

    examples = read(write(tmp_path, "jsonl", rows), "chat")

    assert [e.fields["messages"] for e in examples] == [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "Name a colour"}, {"role": "assistant", "content": "Blue"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
         {"role": "user", "content": "Translate\n\ncat"}, {"role": "assistant", "content": "chat"}],
    ]  # fmt: skip


def test_it_joins_openai_text_content_parts(tmp_path):
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                        {"role": "assistant", "content": "ok"}]}  # fmt: skip

    [example] = read(write(tmp_path, "jsonl", [row]), "chat")

    assert example.fields["messages"][0] == {"role": "user", "content": "ab"}


def test_it_keeps_an_instruction_system_prompt(tmp_path):
    row = {"instruction": "Greet", "output": "Hello", "system": "You are a pirate."}

    [example] = read(write(tmp_path, "jsonl", [row]), "instruction")

    assert example.fields == {
        "instruction": "Greet",
        "input": "",
        "output": "Hello",
        "system": "You are a pirate.",
    }


def test_it_takes_the_last_assistant_answer_of_message_lists_in_preference_pairs(tmp_path):
    prompt = [{"role": "system", "content": "Be safe."}, {"role": "user", "content": "Advice?"}]
    rows = [
        {"prompt": prompt, "chosen": [{"role": "assistant", "content": "Careful advice."}],
         "rejected": [{"role": "assistant", "content": "Reckless advice."}]},
        {"chosen": [*prompt, {"role": "assistant", "content": "Good."}],  # TRL: the prompt is implied
         "rejected": [*prompt, {"role": "assistant", "content": "Bad."}]},
        {"conversations": [{"from": "human", "value": "Advice?"}],  # LLaMA-Factory ShareGPT pairs
         "chosen": {"from": "gpt", "value": "Good."}, "rejected": {"from": "gpt", "value": "Bad."}},
    ]  # fmt: skip

    examples = read(write(tmp_path, "jsonl", rows), "preference")

    assert [e.fields for e in examples] == [
        {"prompt": prompt, "chosen": "Careful advice.", "rejected": "Reckless advice."},
        {"prompt": prompt, "chosen": "Good.", "rejected": "Bad."},
        {"prompt": [{"role": "user", "content": "Advice?"}], "chosen": "Good.", "rejected": "Bad."},
    ]


def test_it_names_class_labels_of_a_hugging_face_folder(tmp_path):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})  # fmt: skip
    path = tmp_path / "sst"
    datasets.Dataset.from_dict({"text": ["meh", "wow"], "label": [0, 1]}, features=features).save_to_disk(
        str(path)
    )

    examples = read(path, "classification", name="sst.zip", file_format="hf")

    assert [(e.fields["label"], e.category) for e in examples] == [
        ("negative", "negative"),
        ("positive", "positive"),
    ]


def test_it_reads_a_gb18030_csv(tmp_path):
    path = tmp_path / "客服.csv"
    path.write_bytes("text,label\n快递太慢了,物流\n客服态度很好,服务\n".encode("gb18030"))

    examples = read(path, "classification")

    assert [e.fields for e in examples] == [
        {"text": "快递太慢了", "label": "物流"},
        {"text": "客服态度很好", "label": "服务"},
    ]


def test_it_reads_gb18030_json_lines(tmp_path):
    path = tmp_path / "old-export.jsonl"
    path.write_bytes('{"text": "发票开错了", "label": "财务"}\n'.encode("gb18030"))

    [example] = read(path, "classification")

    assert example.fields == {"text": "发票开错了", "label": "财务"}


def test_it_reads_a_utf8_bom_csv_with_a_json_messages_cell_and_tags(tmp_path):
    path = tmp_path / "chats.csv"
    cell = json.dumps(REFUND, ensure_ascii=False).replace('"', '""')
    path.write_bytes(f'\ufeffMessages,tags\n"{cell}","refund; policy"\n'.encode())

    [example] = read(path, "chat")

    assert (example.fields, example.category, example.ref) == ({"messages": REFUND}, "refund", {"file": "chats.csv",
                                                                                                 "line": 2})  # fmt: skip


def test_it_honours_the_given_format_over_the_stored_name(tmp_path):
    path = tmp_path / "data.jsonl"  # how uploads are stored: a JSON array uploaded as cases.json
    path.write_text(json.dumps([{"text": "a", "label": "x"}]), encoding="utf-8")

    [example] = read(path, "classification", name="cases.json", file_format="jsonl")

    assert example.ref == {"file": "cases.json", "line": 1}


def test_it_recognises_a_file_without_an_extension_by_its_first_bytes(tmp_path):
    path = write(tmp_path, "parquet", SAMPLES["classification"][0])
    bare = path.rename(tmp_path / "upload-1234")

    assert len(read(bare, "classification", name="upload")) == 2


# ---- bad input ------------------------------------------------------------------------------------------------------


def test_it_names_the_file_line_and_field_of_a_missing_column(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"instruction": "c"}, {"output": "d"}]

    with pytest.raises(BuildError) as raised:
        read(write(tmp_path, "jsonl", rows, name="cases"), "instruction")

    assert str(raised.value) == "cases.jsonl: 2 problems:\n  line 2: output: missing (or 'response' / 'answer')" \
                                "\n  line 3: instruction: missing"  # fmt: skip


def test_it_names_the_field_of_a_wrong_type(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 42}]}]

    with pytest.raises(
        BuildError, match=r"^a\.jsonl: line 1: messages\[1\]\.content: expected a string, got a number$"
    ):
        read(write(tmp_path, "jsonl", rows, name="a"), "chat")


def test_it_names_unknown_roles_and_chats_without_an_answer(tmp_path):
    rows = [{"messages": [{"role": "tool", "content": "{}"}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "hello?"}]}]  # fmt: skip

    with pytest.raises(SourceError) as raised:
        read(write(tmp_path, "jsonl", rows, name="a"), "chat")

    assert raised.value.problems == [
        "line 1: messages[0].role: unknown role 'tool'; use system, user or assistant",
        "line 2: messages: the last message must be the assistant's answer, not the user's",
    ]


def test_it_names_the_line_of_invalid_json_and_reads_on(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"text": "ok", "label": "x"}\n{"text": "broken",\n\n[1, 2]\n{"text": "ok", "label": 3}\n'
    )

    with pytest.raises(SourceError) as raised:
        read(path, "classification")

    assert [p.split(":")[0] for p in raised.value.problems] == ["line 2", "line 4"]
    assert "invalid JSON" in raised.value.problems[0] and "expected a JSON object, got list" in str(
        raised.value
    )


def test_it_lists_twenty_problems_and_counts_the_rest(tmp_path):
    rows = [{"text": f"row {i}"} for i in range(25)]

    with pytest.raises(SourceError) as raised:
        read(write(tmp_path, "csv", rows, name="big"), "classification")

    message = str(raised.value)
    assert message.startswith("big.csv: 25 problems:\n  line 2: label: missing")
    assert len(raised.value.problems) == 20 and message.endswith("\n  and 5 more")


def test_it_yields_no_rows_after_a_problem_but_still_reports_it(tmp_path):
    rows = [{"text": "fine", "label": "a"}, {"text": "no label"}, {"text": "fine", "label": "b"}]
    seen = []

    with pytest.raises(BuildError, match="line 2: label: missing"):
        for example in read_file(write(tmp_path, "jsonl", rows), name="x.jsonl", task_type="classification"):
            seen.append(example.ref["line"])

    assert seen == [1]


def test_it_refuses_an_unknown_format(tmp_path):
    path = tmp_path / "cases.xlsx"
    path.write_bytes(b"PK\x03\x04 a workbook")

    with pytest.raises(
        BuildError, match=r"^cases\.xlsx: unknown format; use JSONL, CSV, Parquet or a Hugging Face"
    ):
        read(path, "chat")


def test_it_names_a_broken_parquet_file(tmp_path):
    path = write(tmp_path, "parquet", SAMPLES["classification"][0], name="labels")
    path.write_bytes(path.read_bytes()[:-40])

    with pytest.raises(BuildError, match=r"^labels\.parquet: not a readable Parquet file"):
        read(path, "classification")


def test_it_names_a_broken_arrow_file_of_a_hugging_face_folder(tmp_path):
    path = write(tmp_path, "hf", SAMPLES["classification"][0], name="folder")
    (path / "data-00000-of-00001.arrow").write_bytes(b"not arrow at all")

    with pytest.raises(BuildError, match=r"^folder: data-00000-of-00001\.arrow is not a readable Arrow file"):
        read(path, "classification")


def test_it_refuses_a_hugging_face_folder_that_points_outside_itself(tmp_path):
    path = write(tmp_path, "hf", SAMPLES["classification"][0], name="folder")
    state = json.loads((path / "state.json").read_text())
    state["_data_files"] = [{"filename": "../../etc/passwd"}]
    (path / "state.json").write_text(json.dumps(state))

    with pytest.raises(BuildError, match="is not inside the folder"):
        read(path, "classification", file_format="hf")


def test_it_names_a_json_array_cut_short(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"text": "a", "label": "x"},\n {"text": "b", "lab')

    with pytest.raises(BuildError, match=r"^a\.json: item 2: invalid JSON"):
        read(path, "classification")


def test_it_says_when_a_stored_file_is_gone(tmp_path):
    with pytest.raises(BuildError, match=r"^cases\.csv: the file is missing from storage$"):
        read(tmp_path / "data.csv", "chat", name="cases.csv", file_format="csv")


def test_it_refuses_a_file_without_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n\n")

    with pytest.raises(BuildError, match=r"^empty\.csv: the file has no rows$"):
        read(path, "classification")


def test_it_refuses_a_csv_record_with_more_cells_than_the_header(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\nhello, world,greeting\n")

    with pytest.raises(BuildError, match=r"^a\.csv: line 2: 3 cells but the header names 2 columns$"):
        read(path, "classification")


# ---- error cases ----------------------------------------------------------------------------------------------------

CASE = {"id": 7, "messages": [{"role": "system", "content": "You are support."},
                              {"role": "user", "content": "Can I return shoes?"}],
        "bad_output": "No.", "expected_output": " Yes, within 30 days. ", "task_type": "chat",
        "tags": ["returns", "policy"]}  # fmt: skip


def test_it_makes_a_chat_example_of_a_case_ending_with_the_expected_answer():
    example = example_from_case(CASE, "chat")

    assert example.fields == {"messages": [*CASE["messages"],
                                           {"role": "assistant", "content": " Yes, within 30 days. "}]}  # fmt: skip
    assert (example.origin, example.ref, example.category) == ("case", {"case": 7}, "returns")


def test_it_makes_an_instruction_of_a_case_keeping_the_system_prompt():
    example = example_from_case(CASE, "instruction")

    assert example.fields == {"instruction": "Can I return shoes?", "input": "", "output": " Yes, within 30 days. ",
                              "system": "You are support."}  # fmt: skip


def test_it_makes_a_classification_of_a_case_with_the_stripped_expected_output_as_label():
    example = example_from_case({**CASE, "expected_output": " returns \n"}, "classification")

    assert (example.fields, example.category) == (
        {"text": "Can I return shoes?", "label": "returns"},
        "returns",
    )


def test_it_makes_a_preference_pair_of_a_case_preferring_the_expected_answer():
    example = example_from_case(CASE, "preference")

    assert example.fields == {
        "prompt": CASE["messages"],
        "chosen": " Yes, within 30 days. ",
        "rejected": "No.",
    }
    assert example.category == "returns"


def test_it_skips_a_case_without_an_expected_output():
    assert example_from_case({**CASE, "expected_output": "  "}, "chat") is None
    assert example_from_case({**CASE, "expected_output": None, "tags": []}, "preference") is None
