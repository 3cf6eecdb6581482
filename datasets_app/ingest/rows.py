"""What one imported case looks like, and how one parsed JSON object (or CSV row) becomes one, checked.

Every problem of a row is reported, not just the first: `build_row` appends one `LineError` per problem and
returns a `CaseRow` only when there were none.
"""

import json
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache

ROLES = ("system", "user", "assistant")
SEVERITIES = ("low", "medium", "high", "critical")
TASK_TYPES = ("chat", "classification", "extraction")
# The longest value the ErrorCase columns hold (characters).
MAX_LENGTHS = {"product": 100, "feature": 100, "model_version": 200}
RAW_LIMIT = 2000  # characters of the original line kept with a LineError

OPTIONAL_FIELDS = (
    "expected",
    "tags",
    "severity",
    "task_type",
    "product",
    "feature",
    "model_version",
    "metadata",
)
FLAT_FIELDS = ("input", "output", "system")
KNOWN_FIELDS = frozenset(("messages", *FLAT_FIELDS, *OPTIONAL_FIELDS))
# Names people reach for that mean one of ours (CaseRow's own attribute names among them).
ALIASES = {"expected_output": "expected", "bad_output": "output", "tag": "tags"}


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed (it cannot be stored)")


# json.loads, except that NaN and Infinity (which PostgreSQL's jsonb refuses) are errors.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
decode_json = _DECODER.decode
_scan_once = _DECODER.scan_once
_LINE_ENDS = ("\n", "\r\n", "")


def loads_line(text: str):
    """decode_json for one JSONL line, about a third faster on the common shape.

    It calls the decoder's scanner directly (what `JSONDecoder.raw_decode` does) when the line starts with a
    value and ends right after it; any other line, valid or not, goes through `decode_json`, so the result and
    the error messages are exactly json.loads's.
    """
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError):
        return decode_json(text)
    return value if text[end:] in _LINE_ENDS else decode_json(text)

_ROLE_SET = frozenset(ROLES)
_SEVERITY_SET = frozenset(SEVERITIES)
_TASK_TYPE_SET = frozenset(TASK_TYPES)
_SIMPLE_TURN = frozenset(("role", "content"))


@dataclass(slots=True)
class CaseRow:
    line: int  # 1-based line (JSONL), or CSV record number counting the header as line 1
    messages: list[dict]  # the conversation before the bad answer; ends with a user turn
    bad_output: str  # the bad answer (never empty)
    expected_output: str = ""  # the corrected answer; may be empty
    task_type: str = "chat"  # one of TASK_TYPES
    tags: list[str] = field(default_factory=list)  # normalised, known, without duplicates
    severity: str = "medium"  # one of SEVERITIES
    product: str = ""
    feature: str = ""
    model_version: str = ""
    metadata: dict = field(default_factory=dict)
    raw: str = ""  # the original line (CSV: record) text, without its line ending


@dataclass(slots=True)
class LineError:
    line: int  # 0 for problems of the whole file that belong to no line
    field: str  # "messages[2].role", "severity", "tags", "(line)" for the whole line, "(file)" for the file
    reason: str  # human readable, e.g. "invalid JSON: Expecting ',' delimiter at column 17"
    raw: str = ""  # the original line, at most RAW_LIMIT characters


def clip(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT]


def kind(value) -> str:
    """The JSON name of a value's type, for reasons such as "must be a string, got a number"."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def has_nul(value) -> bool:
    """Whether a parsed JSON value holds the character U+0000 anywhere (PostgreSQL text cannot store it)."""
    if type(value) is str:
        return "\x00" in value
    if type(value) is list:
        return any(has_nul(item) for item in value)
    if type(value) is dict:
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    return False


def normalise_tag(tag: str) -> str:
    """' Wrong  Unit ' -> 'wrong_unit': the form tags have in the database (a slug)."""
    return "_".join(tag.lower().split())


@lru_cache(maxsize=1024)
def suggest(name: str) -> str | None:
    """The field an unknown name was probably meant to be, or None when it looks like a deliberate extra."""
    if name in ALIASES:
        return ALIASES[name]
    lowered = name.strip().lower()
    if lowered in KNOWN_FIELDS:
        return lowered
    matches = get_close_matches(lowered, KNOWN_FIELDS, n=1, cutoff=0.85)
    return matches[0] if matches else None


def _unknown_tag(line: int, tag: str, known_tags: frozenset[str]) -> LineError:
    if known_tags:
        shown = ", ".join(sorted(known_tags)[:20]) + (", ..." if len(known_tags) > 20 else "")
        reason = f"unknown tag '{tag}'; tags are managed by admins (known tags: {shown})"
    else:
        reason = f"unknown tag '{tag}'; tags are managed by admins and none is defined yet"
    return LineError(line, "tags", reason)


def check_tags(value, line: int, known_tags: frozenset[str], errors: list) -> list[str]:
    if type(value) is not list:
        errors.append(LineError(line, "tags", f"tags must be a list of strings, got {kind(value)}"))
        return []
    tags: list[str] = []
    for i, tag in enumerate(value):
        if type(tag) is not str:
            errors.append(LineError(line, f"tags[{i}]", f"a tag must be a string, got {kind(tag)}"))
            continue
        tag = normalise_tag(tag)
        if not tag or tag in tags:
            continue
        if tag in known_tags:
            tags.append(tag)
        else:
            errors.append(_unknown_tag(line, tag, known_tags))
    return tags


def _choice(value, name: str, allowed: frozenset[str], listed: tuple, default: str, line: int, errors: list):
    if value is None:
        return default
    if type(value) is not str:
        errors.append(LineError(line, name, f"{name} must be a string, got {kind(value)}"))
        return default
    choice = value.strip().lower()
    if choice in allowed:
        return choice
    if not choice:
        return default
    errors.append(LineError(line, name, f"unknown {name} '{value}'; allowed: {', '.join(listed)}"))
    return default


def _text(obj: dict, name: str, line: int, errors: list) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if type(value) is not str:
        errors.append(LineError(line, name, f"{name} must be a string, got {kind(value)}"))
        return ""
    limit = MAX_LENGTHS.get(name)
    if limit is not None and len(value) > limit:
        errors.append(LineError(line, name, f"{name} is {len(value)} characters; the limit is {limit}"))
    return value


def _content(value, where: str, line: int, errors: list) -> str:
    """A turn's text: a string, or OpenAI content parts [{"type": "text", "text": ...}] joined by newlines."""
    if type(value) is str:
        return value
    if type(value) is not list:
        errors.append(
            LineError(line, where, f"content must be a string or a list of text parts, got {kind(value)}")
        )
        return ""
    texts = []
    for j, part in enumerate(value):
        part_type = part.get("type") if type(part) is dict else None
        text = part.get("text") if part_type == "text" else None
        if type(text) is str:
            texts.append(text)
        elif part_type == "text":
            errors.append(LineError(line, f"{where}[{j}].text", f"text must be a string, got {kind(text)}"))
        elif type(part_type) is str:
            errors.append(
                LineError(line, f"{where}[{j}]", f"only text parts can be imported, got a '{part_type}' part")
            )
        else:
            errors.append(
                LineError(line, f"{where}[{j}]", 'a content part must be {"type": "text", "text": "..."}')
            )
    return "\n".join(texts)


def _chat(messages, line: int, errors: list) -> tuple[list[dict], str]:
    """Splits an OpenAI conversation into the turns before the last assistant turn, and that (bad) answer."""
    if type(messages) is not list:
        errors.append(LineError(line, "messages", f"messages must be a list of turns, got {kind(messages)}"))
        return [], ""
    turns: list = []
    roles: list = []
    last = -1
    for i, message in enumerate(messages):
        if type(message) is not dict:
            errors.append(
                LineError(
                    line,
                    f"messages[{i}]",
                    f"a turn must be an object with role and content, got {kind(message)}",
                )
            )
            turns.append(None)
            roles.append(None)
            continue
        role = message.get("role")
        content = message.get("content")
        if type(content) is str and message.keys() == _SIMPLE_TURN:
            turn = message  # the common case: reuse the parsed dict as it is
        else:
            content = _content(content, f"messages[{i}].content", line, errors)
            turn = {"role": role, "content": content}
            if "tool_calls" in message or "function_call" in message:
                errors.append(
                    LineError(
                        line,
                        f"messages[{i}]",
                        "tool calls are not supported; only text turns can be imported",
                    )
                )
        if type(role) is not str or role not in _ROLE_SET:
            if role == "tool" or role == "function":
                reason = (
                    f"role '{role}' is not supported; only system, user and assistant turns can be imported"
                )
            elif role is None:
                reason = "the turn has no role; allowed: system, user, assistant"
            else:
                reason = f"unknown role {role!r}; allowed: system, user, assistant"
            errors.append(LineError(line, f"messages[{i}].role", reason))
            role = None
        elif role == "assistant":
            last = i
        turns.append(turn)
        roles.append(role)
    if last < 0:
        errors.append(
            LineError(line, "messages", "no assistant turn: the last assistant turn is the bad answer")
        )
        return [], ""
    if last + 1 < len(messages):
        errors.append(
            LineError(
                line,
                f"messages[{last + 1}]",
                "the conversation must end with the bad answer (the last assistant turn); this turn comes after it",
            )
        )
    if "user" not in roles[:last]:
        errors.append(
            LineError(line, "messages", "no user turn before the bad answer (the last assistant turn)")
        )
    elif roles[last - 1] not in ("user", None):
        errors.append(
            LineError(
                line,
                f"messages[{last - 1}].role",
                f"the turn before the bad answer must be a user turn, got {roles[last - 1]}",
            )
        )
    bad_output = turns[last]["content"]
    if not bad_output.strip() and type(messages[last].get("content")) in (str, list):  # else already reported
        errors.append(
            LineError(line, f"messages[{last}].content", "the bad answer (the last assistant turn) is empty")
        )
    return turns[:last], bad_output


def _flat(obj: dict, line: int, errors: list) -> tuple[list[dict], str]:
    """{"input", "output", "system"?} -> [system?, user], bad answer."""
    values = []
    for name, missing, empty in (
        ("input", "input is missing; the flat form needs input and output", "input is empty"),
        (
            "output",
            "output (the bad answer) is missing; the flat form needs input and output",
            "output (the bad answer) is empty",
        ),
    ):
        value = obj.get(name)
        if value is None:
            errors.append(LineError(line, name, missing))
        elif type(value) is not str:
            errors.append(LineError(line, name, f"{name} must be a string, got {kind(value)}"))
        elif not value.strip():
            errors.append(LineError(line, name, empty))
        values.append(value)
    system = _text(obj, "system", line, errors)
    messages = [{"role": "user", "content": values[0]}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages, values[1]


def build_row(obj: dict, line: int, raw: str, known_tags: frozenset[str], errors: list) -> CaseRow | None:
    """Checks one object in either form; appends every problem to `errors`; returns the row if `errors` is empty.

    Most rows are plain and valid: `_plain_row` takes them in one pass, and anything it is not sure of goes
    through `_checked_row`, which names every problem. Both give the same row for the same valid object.
    """
    if not errors:
        row = _plain_row(obj, line, raw, known_tags)
        if row is not None:
            return row
    return _checked_row(obj, line, raw, known_tags, errors)


def _plain_row(obj: dict, line: int, raw: str, known_tags: frozenset[str]) -> CaseRow | None:
    """The row for an object with only known fields in their canonical form, or None to check it in detail."""
    if not KNOWN_FIELDS.issuperset(obj):
        return None
    get = obj.get
    messages = get("messages")
    if messages is not None:
        if (
            type(messages) is not list
            or len(messages) < 2
            or "input" in obj
            or "output" in obj
            or "system" in obj
        ):
            return None
        answer = messages[-1]
        if type(answer) is not dict or len(answer) != 2 or answer.get("role") != "assistant":
            return None
        bad_output = answer.get("content")
        turns = messages[:-1]
        prompt = turns[-1]
        if type(prompt) is not dict or prompt.get("role") != "user":
            return None
        for turn in turns:  # exactly {role, content}, a known role, string content
            if type(turn) is not dict or len(turn) != 2 or type(turn.get("content")) is not str:
                return None
            if turn.get("role") not in ROLES:
                return None
    else:
        user = get("input")
        bad_output = get("output")
        system = get("system")
        if type(user) is not str or not user or user.isspace():
            return None
        if system is None or system == "":
            turns = [{"role": "user", "content": user}]
        elif type(system) is str:
            turns = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        else:
            return None
    if type(bad_output) is not str or not bad_output or bad_output.isspace():
        return None

    expected = get("expected")
    if expected is None:
        expected = ""
    elif type(expected) is not str:
        return None
    tags = get("tags")
    if tags is None:
        tags = []
    elif type(tags) is not list:
        return None
    elif tags:
        given, tags = tags, []
        for tag in given:
            if type(tag) is not str:
                return None
            if tag not in known_tags:
                tag = normalise_tag(tag)
                if tag not in known_tags:
                    if tag:
                        return None
                    continue
            if tag not in tags:
                tags.append(tag)
    severity = get("severity")
    if severity is None:
        severity = "medium"
    elif type(severity) is not str or severity not in _SEVERITY_SET:
        return None
    task_type = get("task_type")
    if task_type is None:
        task_type = "chat"
    elif type(task_type) is not str or task_type not in _TASK_TYPE_SET:
        return None
    product = get("product")
    if product is None:
        product = ""
    elif type(product) is not str or len(product) > MAX_LENGTHS["product"]:
        return None
    feature = get("feature")
    if feature is None:
        feature = ""
    elif type(feature) is not str or len(feature) > MAX_LENGTHS["feature"]:
        return None
    model_version = get("model_version")
    if model_version is None:
        model_version = ""
    elif type(model_version) is not str or len(model_version) > MAX_LENGTHS["model_version"]:
        return None
    metadata = get("metadata")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        return None
    return CaseRow(
        line,
        turns,
        bad_output,
        expected,
        task_type,
        tags,
        severity,
        product,
        feature,
        model_version,
        metadata,
        raw,
    )


def _checked_row(obj: dict, line: int, raw: str, known_tags: frozenset[str], errors: list) -> CaseRow | None:
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        errors.append(LineError(line, "metadata", f"metadata must be an object, got {kind(metadata)}"))
    if not KNOWN_FIELDS.issuperset(obj):
        extras = {}
        for name in obj:
            if name in KNOWN_FIELDS:
                continue
            meant = suggest(name)
            if meant is None:
                extras[name] = obj[name]
            else:
                errors.append(LineError(line, name, f"unknown field '{name}'; did you mean '{meant}'?"))
        if extras and type(metadata) is dict:
            metadata = {**extras, **metadata}  # anything else is kept in metadata; metadata's own keys win

    if "messages" in obj:
        if "input" in obj or "output" in obj or "system" in obj:
            errors.append(
                LineError(
                    line,
                    "(line)",
                    "use either messages (chat form) or input/output/system (flat form), not both",
                )
            )
        messages, bad_output = _chat(obj["messages"], line, errors)
    elif "input" in obj or "output" in obj:
        messages, bad_output = _flat(obj, line, errors)
    else:
        errors.append(
            LineError(
                line, "(line)", "no conversation: give messages (chat form) or input and output (flat form)"
            )
        )
        messages, bad_output = [], ""

    expected = obj.get("expected")
    if expected is None:
        expected = ""
    elif type(expected) is not str:
        errors.append(LineError(line, "expected", f"expected must be a string, got {kind(expected)}"))
    tags = obj.get("tags")
    tags = [] if tags is None else check_tags(tags, line, known_tags, errors)
    severity = _choice(obj.get("severity"), "severity", _SEVERITY_SET, SEVERITIES, "medium", line, errors)
    task_type = _choice(obj.get("task_type"), "task_type", _TASK_TYPE_SET, TASK_TYPES, "chat", line, errors)
    product = _text(obj, "product", line, errors)
    feature = _text(obj, "feature", line, errors)
    model_version = _text(obj, "model_version", line, errors)
    if errors:
        return None
    return CaseRow(
        line,
        messages,
        bad_output,
        expected,
        task_type,
        tags,
        severity,
        product,
        feature,
        model_version,
        metadata,
        raw,
    )
