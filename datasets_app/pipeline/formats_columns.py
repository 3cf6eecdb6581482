"""The export shape of each task type: the training row (one JSONL line) and its Arrow schema, plus a column
buffer that turns a run of rows into one Arrow record batch (used for Parquet and for Hugging Face .arrow files).

| task type      | JSONL line                                          | Arrow / Parquet columns                      |
| chat           | {"messages": [{"role", "content"}, ...]} (OpenAI)  | messages: list<struct<role, content>>        |
| instruction    | {"instruction", "input", "output"} (Alpaca; plus    | instruction, input, output, system ("" when  |
|                | "system" when the example has one)                  | none: a column cannot come and go per row)  |
| classification | {"text", "label"}                                   | text, label (strings)                        |
| preference     | {"prompt": [messages], "chosen", "rejected"}        | prompt: list<struct<role, content>>, chosen, |
|                |                                                     | rejected                                     |
"""

from operator import itemgetter

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
ROLE, CONTENT = itemgetter("role"), itemgetter("content")
COLUMNS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "chat": (("messages", MESSAGES),),
    "instruction": (("instruction", pa.string()), ("input", pa.string()), ("output", pa.string()),
                    ("system", pa.string())),
    "classification": (("text", pa.string()), ("label", pa.string())),
    "preference": (("prompt", MESSAGES), ("chosen", pa.string()), ("rejected", pa.string())),
}  # fmt: skip


def training_row(fields: dict, task_type: str) -> dict:
    """The JSONL line of one example: the widely read shape of its task type (OpenAI chat, Alpaca, ...)."""
    if task_type == "chat":
        return {"messages": _messages(fields["messages"])}
    if task_type == "instruction":
        row = {
            "instruction": fields["instruction"],
            "input": fields.get("input", ""),
            "output": fields["output"],
        }
        if fields.get("system"):
            row["system"] = fields["system"]
        return row
    if task_type == "classification":
        return {"text": fields["text"], "label": fields["label"]}
    if task_type == "preference":
        return {
            "prompt": _messages(fields["prompt"]),
            "chosen": fields["chosen"],
            "rejected": fields["rejected"],
        }
    raise ValueError(f"unknown task type {task_type!r}")


def _messages(messages: list) -> list:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def arrow_schema(task_type: str) -> pa.Schema:
    """The schema with the Hugging Face `features` in its metadata (so datasets reads the columns as it wrote them)."""
    from datasets import Features

    return Features.from_arrow_schema(pa.schema(COLUMNS[task_type])).arrow_schema


def features_dict(schema: pa.Schema) -> dict:
    from datasets import Features

    return Features.from_arrow_schema(schema).to_dict()


class ColumnBuffer:
    """Training rows in column lists until `batch()` makes them one RecordBatch (and empties the buffer)."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.columns = [(f.name, pa.types.is_list(f.type)) for f in schema]
        self._reset()

    def _reset(self) -> None:
        self.rows = 0
        self.values: dict[str, list] = {name: [] for name, _ in self.columns}
        self.offsets: dict[str, list] = {name: [0] for name, is_list in self.columns if is_list}
        self.roles: dict[str, list] = {name: [] for name, is_list in self.columns if is_list}

    def add(self, row: dict) -> None:
        self.rows += 1
        for name, is_list in self.columns:
            if is_list:
                messages, contents = row[name], self.values[name]
                self.roles[name].extend(map(ROLE, messages))
                contents.extend(map(CONTENT, messages))
                self.offsets[name].append(len(contents))
            else:
                self.values[name].append(row.get(name, ""))

    def batch(self) -> pa.RecordBatch:
        arrays = []
        for field in self.schema:
            values = pa.array(self.values[field.name], pa.string())
            if pa.types.is_list(field.type):
                struct = pa.StructArray.from_arrays([pa.array(self.roles[field.name], pa.string()), values],
                                                    fields=list(field.type.value_type))  # fmt: skip
                values = pa.ListArray.from_arrays(pa.array(self.offsets[field.name], pa.int32()), struct,
                                                  type=field.type)  # fmt: skip
            arrays.append(values)
        self._reset()
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
