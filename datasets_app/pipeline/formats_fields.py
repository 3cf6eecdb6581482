"""One source row (a dict from JSON, CSV, Parquet or Arrow) → the normalised `fields` of its task type (types.py).

Forgiving about column names, the way LLaMA-Factory's dataset_info and the OpenAI formats are:
- chat: "messages" (OpenAI), "conversations" (ShareGPT: from human|gpt|system, value), or flat
  "instruction"(+"input") / "input" / "prompt" / "question" / "query" with "output" / "answer" / "response" /
  "completion"; an optional "system" column and LLaMA-Factory's "history" ([[user, assistant], ...]).
- instruction: "instruction" (or "prompt" / "question"), "input" (or "context", optional), "output" (or "response" /
  "answer" / "completion"), optional "system".
- classification: "text" (or "sentence" / "content" / "input"), "label" (or "class" / "category"; int or str → str;
  a Hugging Face ClassLabel index → its name).
- preference: "prompt" (a string, or a messages list ending with the user) — or "conversations" / "messages" /
  "instruction"(+"input") / "question" — and "chosen", "rejected" (a string, a {role, content} / {from, value} object,
  or a messages list whose last assistant content is taken). Without a prompt column, chosen/rejected given as whole
  conversations (TRL's implicit prompt) give the prompt: the messages before chosen's last answer.

Cells of a CSV are text: a messages-like column there may hold a JSON list (`text=True`).
A row that does not fit raises RowProblem(field, reason); the caller adds the file and the line.
"""

import re

import orjson

ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "model": "assistant", "bot": "assistant"}  # fmt: skip
TAG_SEPARATORS = re.compile("[,;|、，；｜]")

CHAT_USER = ("input", "prompt", "question", "query")
ANSWER = ("output", "response", "answer", "completion")
INSTRUCTION = ("instruction", "prompt", "question")
TEXT = ("text", "sentence", "content", "input")
LABEL = ("label", "class", "category")


class RowProblem(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def row_fields(
    row: dict, task_type: str, *, text: bool = False, class_names: dict[str, list] | None = None
) -> tuple[dict, str]:
    """(fields, category) of one row; `class_names`: column → the names of a Hugging Face ClassLabel column."""
    if task_type == "chat":
        fields = _chat(row, text)
    elif task_type == "instruction":
        fields = _instruction(row)
    elif task_type == "classification":
        fields = _classification(row, class_names or {})
        return fields, fields["label"]
    elif task_type == "preference":
        fields = _preference(row, text)
    else:
        raise ValueError(f"unknown task type {task_type!r}")
    return fields, _category(row, text)


# ---- task types ----------------------------------------------------------------------------------------------------


def _chat(row: dict, text: bool) -> dict:
    field = "conversations" if _has(row, "conversations") and not _has(row, "messages") else "messages"
    if _has(row, field):
        messages = _messages(row[field], field, text)
    else:
        user = _user_text(row, CHAT_USER)
        answer = _first(row, ANSWER)
        if user is None or answer is None:
            raise RowProblem(
                "messages",
                "missing; give 'messages' (OpenAI), 'conversations' (ShareGPT) or 'input'/'prompt'/'question' "
                "with 'output'/'answer'/'response'",
            )
        messages = [*_history(row), {"role": "user", "content": user[1]},
                    {"role": "assistant", "content": _string(answer[1], answer[0])}]  # fmt: skip
    messages = _with_system(row, messages)
    if messages[-1]["role"] != "assistant":
        raise RowProblem(
            field, f"the last message must be the assistant's answer, not the {messages[-1]['role']}'s"
        )
    if not any(m["role"] == "user" for m in messages):
        raise RowProblem(field, "no user message")
    return {"messages": messages}


def _instruction(row: dict) -> dict:
    instruction, answer = _first(row, INSTRUCTION), _first(row, ANSWER)
    if instruction is None:
        raise RowProblem("instruction", "missing")
    if answer is None:
        raise RowProblem("output", "missing (or 'response' / 'answer')")
    found = _first(row, ("input", "context"))
    fields = {"instruction": _string(instruction[1], instruction[0]),
              "input": _string(found[1], found[0]) if found else "",
              "output": _string(answer[1], answer[0])}  # fmt: skip
    system = _first(row, ("system",))
    if system and _string(system[1], "system"):
        fields["system"] = system[1]
    return fields


def _classification(row: dict, class_names: dict[str, list]) -> dict:
    found_text, found_label = _first(row, TEXT), _first(row, LABEL)
    if found_text is None:
        raise RowProblem("text", "missing (or 'sentence' / 'content')")
    if found_label is None:
        raise RowProblem("label", "missing")
    return {
        "text": _string(found_text[1], found_text[0]),
        "label": _label(found_label[1], found_label[0], class_names.get(found_label[0])),
    }


def _preference(row: dict, text: bool) -> dict:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if chosen is None:
        raise RowProblem("chosen", "missing")
    if rejected is None:
        raise RowProblem("rejected", "missing")
    prompt = _prompt(row, text)
    if prompt is None:
        implied = _maybe_messages(chosen, "chosen", text)
        if not (isinstance(implied, list) and len(implied) > 1):
            raise RowProblem("prompt", "missing (or 'conversations' / 'instruction' / 'question')")
        prompt = _messages(implied, "chosen", text)[:-1]
    if prompt[-1]["role"] != "user":
        raise RowProblem(
            "prompt", f"the prompt must end with the user's message, not the {prompt[-1]['role']}'s"
        )
    return {"prompt": prompt, "chosen": _answer(chosen, "chosen", text),
            "rejected": _answer(rejected, "rejected", text)}  # fmt: skip


def _prompt(row: dict, text: bool) -> list | None:
    for name in ("prompt", "conversations", "messages"):
        if _has(row, name):
            value = _maybe_messages(row[name], name, text)
            if isinstance(value, str):
                return _with_system(row, [{"role": "user", "content": value}])
            return _with_system(row, _messages(value, name, text))
    user = _user_text(row, ("question", "query"))
    return _with_system(row, [{"role": "user", "content": user[1]}]) if user else None


def _answer(value, field: str, text: bool) -> str:
    value = _maybe_messages(value, field, text)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _messages([value], field, text)[0]["content"]
    if isinstance(value, list):
        answers = [m["content"] for m in _messages(value, field, text) if m["role"] == "assistant"]
        if not answers:
            raise RowProblem(field, "the messages hold no assistant answer")
        return answers[-1]
    raise RowProblem(field, f"expected a string or a messages list, got {_kind(value)}")


def _category(row: dict, text: bool) -> str:
    value = row.get("category")
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    tags = row.get("tags")
    if isinstance(tags, str):
        tags = _maybe_json_list(tags) if text else None
        if tags is None:
            tags = TAG_SEPARATORS.split(row["tags"])
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str) and tag.strip():
                return tag.strip()
    return ""


# ---- pieces --------------------------------------------------------------------------------------------------------


def _has(row: dict, name: str) -> bool:
    return row.get(name) is not None


def _first(row: dict, names: tuple) -> tuple[str, object] | None:
    for name in names:
        value = row.get(name)
        if value is not None:
            return name, value
    return None


def _user_text(row: dict, names: tuple) -> tuple[str, str] | None:
    """Alpaca's instruction (+ "\n\n" + input) when there is an instruction, else the first of `names`."""
    if _has(row, "instruction"):
        instruction = _string(row["instruction"], "instruction")
        extra = _string(row["input"], "input") if _has(row, "input") else ""
        return "instruction", f"{instruction}\n\n{extra}" if extra else instruction
    found = _first(row, names)
    return (found[0], _string(found[1], found[0])) if found else None


def _history(row: dict) -> list[dict]:
    history = row.get("history")
    if not history:
        return []
    if not isinstance(history, list):
        raise RowProblem("history", f"expected a list of [user, assistant] pairs, got {_kind(history)}")
    messages = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise RowProblem(f"history[{i}]", "expected a [user, assistant] pair")
        messages += [{"role": "user", "content": _string(pair[0], f"history[{i}][0]")},
                     {"role": "assistant", "content": _string(pair[1], f"history[{i}][1]")}]  # fmt: skip
    return messages


def _with_system(row: dict, messages: list[dict]) -> list[dict]:
    system = row.get("system")
    if system is None or (messages and messages[0]["role"] == "system"):
        return messages
    system = _string(system, "system")
    return [{"role": "system", "content": system}, *messages] if system else messages


def _maybe_json_list(value: str):
    if not value.lstrip().startswith("["):
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) else None


def _maybe_messages(value, field: str, text: bool):
    """A CSV cell holding a JSON list of messages → that list; anything else as it is."""
    if text and isinstance(value, str):
        parsed = _maybe_json_list(value)
        if parsed is not None and all(isinstance(m, dict) for m in parsed):
            return parsed
    return value


def _messages(value, field: str, text: bool) -> list[dict]:
    if text and isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise RowProblem(field, f"not a JSON list of messages ({e})") from None
    if not isinstance(value, list):
        raise RowProblem(field, f"expected a list of {{role, content}} objects, got {_kind(value)}")
    if not value:
        raise RowProblem(field, "no messages")
    messages = []
    append = messages.append
    for i, item in enumerate(value):  # the common case, fast: {"role": user|assistant|..., "content": str}
        try:
            role, content = ROLES[item["role"]], item["content"]
        except (KeyError, TypeError):
            break
        if type(content) is not str or (role == "system" and i):
            break
        append({"role": role, "content": content})
    else:
        return messages
    messages = []
    for i, item in enumerate(value):  # ShareGPT keys, content parts, or a problem to name
        if not isinstance(item, dict):
            raise RowProblem(f"{field}[{i}]", f"expected a {{role, content}} object, got {_kind(item)}")
        role_key = "role" if "role" in item else "from"
        role = ROLES.get(item.get(role_key)) if isinstance(item.get(role_key), str) else None
        if role is None:
            raise RowProblem(f"{field}[{i}].{role_key}",
                             f"unknown role {item.get(role_key)!r}; use system, user or assistant")  # fmt: skip
        if role == "system" and i:
            raise RowProblem(f"{field}[{i}].{role_key}", "a system message may only come first")
        content_key = "content" if "content" in item else "value"
        messages.append(
            {"role": role, "content": _content(item.get(content_key), f"{field}[{i}].{content_key}")}
        )
    return messages


def _content(value, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": ...}]
        parts = [p.get("text") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(value) and all(isinstance(p, str) for p in parts):
            return "".join(parts)
        raise RowProblem(field, "only text content parts can be used")
    raise RowProblem(field, f"expected a string, got {_kind(value)}")


def _string(value, field: str) -> str:
    if isinstance(value, str):
        return value
    raise RowProblem(field, f"expected a string, got {_kind(value)}")


def _label(value, field: str, labels: list | None) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(labels[value]) if labels and 0 <= value < len(labels) else str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | float):
        return str(value)
    raise RowProblem(field, f"expected a string or a number, got {_kind(value)}")


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip
