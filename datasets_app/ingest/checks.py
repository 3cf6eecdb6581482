"""The detailed checks: every problem of a line, each with its field and a reason a user can act on.

`checked_row` is the slow path of `build.build_row`; it also builds the row when the object is valid but not
in canonical form (a capitalised severity, content parts, extra fields kept in metadata).
"""

from datasets_app.ingest.rows import (
    KNOWN_FIELDS,
    MAX_LENGTHS,
    SEVERITIES,
    TASK_TYPES,
    CaseRow,
    LineError,
    kind,
    normalise_tag,
    quote,
    suggest,
)

_ROLE_SET = frozenset(("system", "user", "assistant"))
_SEVERITY_SET = frozenset(SEVERITIES)
_TASK_TYPE_SET = frozenset(TASK_TYPES)
_SIMPLE_TURN = frozenset(("role", "content"))


def _unknown_tag(line: int, tag: str, known_tags: frozenset[str]) -> LineError:
    if known_tags:
        shown = ", ".join(sorted(known_tags)[:20]) + (", ..." if len(known_tags) > 20 else "")
        reason = f"unknown tag {quote(tag)}; tags are managed by admins (known tags: {shown})"
    else:
        reason = f"unknown tag {quote(tag)}; tags are managed by admins and none is defined yet"
    return LineError(line, "tags", reason)


def check_tags(value, line: int, known_tags: frozenset[str], errors: list) -> list[str]:
    if type(value) is not list:
        errors.append(LineError(line, "tags", f"tags must be a list of strings, got {kind(value)}"))
        return []
    tags: list[str] = []
    unknown: set[str] = set()
    for i, tag in enumerate(value):
        if type(tag) is not str:
            errors.append(LineError(line, f"tags[{i}]", f"a tag must be a string, got {kind(tag)}"))
            continue
        tag = normalise_tag(tag)
        if not tag or tag in tags or tag in unknown:
            continue
        if tag in known_tags:
            tags.append(tag)
        else:
            unknown.add(tag)
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
    errors.append(LineError(line, name, f"unknown {name} {quote(value)}; allowed: {', '.join(listed)}"))
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
                LineError(
                    line, f"{where}[{j}]", f"only text parts can be imported, got a {quote(part_type)} part"
                )
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
                shown = quote(role) if type(role) is str else kind(role)
                reason = f"unknown role {shown}; allowed: system, user, assistant"
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


def checked_row(obj: dict, line: int, raw: str, known_tags: frozenset[str], errors: list) -> CaseRow | None:
    """Every problem of the object appended to `errors`; the row when there is none (and none came before)."""
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
                errors.append(LineError(line, name, f"unknown field {quote(name)}; did you mean '{meant}'?"))
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
        found = ", ".join(name if len(name) <= 40 else quote(name) for name in list(obj)[:10]) or "nothing"
        reason = f"no conversation: give messages (chat form) or input and output (flat form); found: {found}"
        errors.append(LineError(line, "(line)", reason))
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
