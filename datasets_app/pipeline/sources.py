"""Where a build's examples come from (Django-free): files a data scientist uploaded, and error cases.

`read_file` streams the rows of a JSONL / JSON-array, CSV, Parquet or Arrow file or a Hugging Face `save_to_disk`
folder as Examples (the column names it accepts per task type are in formats_fields.py). A bad file raises one
SourceError (a BuildError) that names the file and, for each of up to MAX_PROBLEMS problems, the line and the field
("and N more" for the rest). Rows are yielded until the first problem; the file is then read to its end to gather
the others, so the build fails as a whole.

`example_from_case` maps one approved error case (a plain dict) to the dataset's task type.
"""

from collections.abc import Iterator
from pathlib import Path

from datasets_app.pipeline.formats_fields import ROLES, RowProblem, row_fields
from datasets_app.pipeline.formats_readers import (
    Source,
    Unreadable,
    arrow_source,
    csv_source,
    head_of,
    hf_parts,
    json_source,
    parquet_source,
)
from datasets_app.pipeline.types import TASK_TYPES, BuildError, Example

MAX_PROBLEMS = 20
FORMATS = ("jsonl", "csv", "parquet", "arrow", "hf")
SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow"}  # fmt: skip
UNKNOWN = "unknown format; use JSONL, CSV, Parquet or a Hugging Face datasets folder"


class SourceError(BuildError):
    """A source file that cannot be used; `problems` are "line 3: output: missing"-style strings."""

    def __init__(self, name: str, problems: list[str], more: int = 0):
        self.name, self.problems, self.more = name, problems, more
        if len(problems) == 1 and not more:
            message = f"{name}: {problems[0]}"
        else:
            listed = "".join(f"\n  {p}" for p in problems)
            message = f"{name}: {len(problems) + more} problems:{listed}" + (
                f"\n  and {more} more" if more else ""
            )
        super().__init__(message)


def read_file(path: Path, *, name: str, task_type: str, file_format: str | None = None) -> Iterator[Example]:
    """The rows of an uploaded source file as Examples (origin "file", ref {"file": name, "line": n}).

    `file_format` ("jsonl" — JSON Lines or a JSON array —, "csv", "parquet", "arrow" or "hf") skips detection by
    the extension of `name` (then of `path`) and by sniffing the first bytes. `name` is what messages and refs show.
    """
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}")
    path = Path(path)
    fmt = detect_format(path, name, file_format)
    problems: list[str] = []
    more = count = 0
    try:
        for split, source in _sources(path, fmt):
            where = f"{split} " if split else ""
            for number, row in source.rows:
                try:
                    if isinstance(row, str):
                        raise RowProblem("", row)
                    fields, category = row_fields(
                        row, task_type, text=fmt == "csv", class_names=source.class_names
                    )
                except RowProblem as p:
                    if len(problems) < MAX_PROBLEMS:
                        field = f"{p.field}: " if p.field else ""
                        problems.append(f"{where}{source.unit} {number}: {field}{p.reason}")
                    else:
                        more += 1
                    continue
                count += 1
                if not problems:
                    ref = (
                        {"file": name, "split": split, "line": number}
                        if split
                        else {"file": name, "line": number}
                    )
                    yield Example(task_type, fields, "file", ref, category=category)
    except Unreadable as e:
        raise SourceError(name, [*problems, str(e)], more) from None
    if problems:
        raise SourceError(name, problems, more)
    if not count:
        raise SourceError(name, ["the file has no rows"])


def detect_format(path: Path, name: str, file_format: str | None = None) -> str:
    """One of FORMATS, from `file_format`, a folder, the extension of `name` or `path`, or the first bytes."""
    if not path.exists():
        raise SourceError(name, ["the file is missing from storage"])
    if file_format:
        fmt = {"json": "jsonl", "ndjson": "jsonl"}.get(file_format, file_format)
        if fmt not in FORMATS:
            raise SourceError(name, [UNKNOWN])
        if (fmt == "hf") != path.is_dir():
            raise SourceError(
                name, ["a Hugging Face datasets folder is needed" if fmt == "hf" else "not a file"]
            )
        return fmt
    if path.is_dir():
        return "hf"
    for suffix in (Path(name).suffix.lower(), path.suffix.lower()):
        if suffix in SUFFIXES:
            return SUFFIXES[suffix]
    head = head_of(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        return "arrow"
    if head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"["):
        return "jsonl"
    raise SourceError(name, [UNKNOWN])


def _sources(path: Path, fmt: str) -> Iterator[tuple[str | None, Source]]:
    if fmt == "jsonl":
        yield None, json_source(path)
    elif fmt == "csv":
        yield None, csv_source(path)
    elif fmt == "parquet":
        yield None, parquet_source(path)
    elif fmt == "arrow":
        yield None, arrow_source([path])
    else:
        for split, files in hf_parts(path):
            yield split, arrow_source(files)


# ---- error cases ---------------------------------------------------------------------------------------------------


def example_from_case(case: dict, task_type: str) -> Example | None:
    """An approved error case {"id", "messages" (ends with the user), "bad_output", "expected_output", "tags"} as
    an Example of `task_type`; None when the case has no expected output.

    chat: the messages + the expected answer; instruction: the last user message → expected (a leading system
    prompt kept as "system"); classification: the last user message → the expected output as the label;
    preference: the messages as the prompt, expected chosen over bad_output.
    """
    expected = case.get("expected_output") or ""
    if not expected.strip():
        return None
    messages = [{"role": ROLES.get(m.get("role"), m.get("role")), "content": m.get("content") or ""}
                for m in case.get("messages") or []]  # fmt: skip
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    tags = case.get("tags") or []
    category = str(tags[0]) if tags else ""
    if task_type == "chat":
        fields = {"messages": [*messages, {"role": "assistant", "content": expected}]}
    elif task_type == "instruction":
        fields = {"instruction": last_user, "input": "", "output": expected}
        if messages and messages[0]["role"] == "system" and messages[0]["content"]:
            fields["system"] = messages[0]["content"]
    elif task_type == "classification":
        fields = {"text": last_user, "label": expected.strip()}
        category = fields["label"]
    elif task_type == "preference":
        fields = {"prompt": messages, "chosen": expected, "rejected": case.get("bad_output") or ""}
    else:
        raise ValueError(f"unknown task type {task_type!r}")
    return Example(task_type, fields, "case", {"case": case["id"]}, category=category)
