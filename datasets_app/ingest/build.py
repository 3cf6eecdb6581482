"""One parsed object (a JSONL line, or a CSV row in the same shape as the flat form) -> CaseRow or LineErrors."""

from datasets_app.ingest.checks import checked_row
from datasets_app.ingest.rows import (
    KNOWN_FIELDS,
    MAX_LENGTHS,
    ROLES,
    SEVERITIES,
    TASK_TYPES,
    CaseRow,
    normalise_tag,
)

_SEVERITY_SET = frozenset(SEVERITIES)
_TASK_TYPE_SET = frozenset(TASK_TYPES)


def build_row(obj: dict, line: int, raw: str, known_tags: frozenset[str], errors: list) -> CaseRow | None:
    """Checks one object in either form; appends every problem to `errors`; returns the row if `errors` is empty.

    Most rows are plain and valid: `plain_row` takes them in one pass, and anything it is not sure of goes
    through `checked_row`, which names every problem. Both give the same row for the same valid object.
    """
    if not errors:
        row = plain_row(obj, line, raw, known_tags)
        if row is not None:
            return row
    return checked_row(obj, line, raw, known_tags, errors)


def plain_row(obj: dict, line: int, raw: str, known_tags: frozenset[str]) -> CaseRow | None:
    """The row for an object with only known fields in their canonical form, or None to check it in detail."""
    if not KNOWN_FIELDS.issuperset(obj):
        return None
    get = obj.get
    if "messages" in obj:
        messages = obj["messages"]
        if (
            type(messages) is not list
            or len(messages) < 2
            or "input" in obj
            or "output" in obj
            or "system" in obj
        ):
            return None
        for turn in messages:  # each exactly {role, content}, with a known role and string content
            if type(turn) is not dict or len(turn) != 2 or turn.get("role") not in ROLES:
                return None
            if type(turn.get("content")) is not str:
                return None
        if messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
            return None
        turns = messages  # the bad answer is popped off it once the whole object is known to be fine
        bad_output = messages[-1]["content"]
        chat = True
    else:
        chat = False
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
    if chat:
        turns.pop()
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
