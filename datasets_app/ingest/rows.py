"""What the parser hands out: a CaseRow per good line, a LineError per problem; and the small shared helpers."""

import json
import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache

ROLES = ("system", "user", "assistant")
SEVERITIES = ("low", "medium", "high", "critical")
TASK_TYPES = ("chat", "classification", "extraction")
MAX_LENGTHS = {"product": 100, "feature": 100, "model_version": 200}  # characters, as the ErrorCase columns
RAW_LIMIT = 4 * 1024 * 1024  # the whole line: the rejected-lines file must import again once fixed (lines are
# already bounded by max_line_bytes, and a LineError lives only until it is written out)

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
ALIASES = {"expected_output": "expected", "bad_output": "output", "system_prompt": "system", "tag": "tags"}


@dataclass(slots=True)
class CaseRow:
    line: int  # 1-based line (JSONL), or CSV record number counting the header as line 1
    messages: list[dict]  # the conversation before the bad answer: [{role, content}], ends with a user turn
    bad_output: str  # the bad answer (never empty)
    expected_output: str = ""  # the corrected answer; may be empty
    task_type: str = "chat"  # one of TASK_TYPES
    tags: list[str] = field(default_factory=list)  # normalised, known to the admins, no duplicates
    severity: str = "medium"  # one of SEVERITIES
    product: str = ""
    feature: str = ""
    model_version: str = ""
    metadata: dict = field(default_factory=dict)
    raw: str = ""  # the original line (CSV: record) text, without its line ending


@dataclass(slots=True)
class LineError:
    line: int  # 0 for a problem of the whole file that belongs to no line
    field: str  # "messages[2].role", "severity", "tags", "(line)" for the whole line, "(file)" for the file
    reason: str  # human readable, e.g. "invalid JSON: Expecting ',' delimiter at column 17"
    raw: str = ""  # the original line, at most RAW_LIMIT characters


def row_or_errors(row: "CaseRow | None", errors: list["LineError"], raw: str):
    """The row, or else every problem found in its line, each carrying the line's text."""
    if row is not None:
        yield row
        return
    raw = clip(raw)
    for error in errors:
        error.raw = raw
        yield error


def clip(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT]


def quote(text: str) -> str:
    """A user's value for a reason: quoted, and cut short when long."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


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


def normalise_tag(tag: str) -> str:
    """' Wrong  Unit ' -> 'wrong_unit': the form tag names have in the database (a slug)."""
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


# The JSON escapes that can produce text PostgreSQL cannot store: U+0000, and UTF-16 surrogates (valid only in
# pairs, which the decoder joins; a lone one comes from an emoji cut in half). Raw bytes cannot produce either.
UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abAB])")


def unstorable(value) -> str | None:
    """Why a parsed JSON value cannot be stored as text (a NUL character, a lone surrogate), or None."""
    stack = [value]
    while stack:
        value = stack.pop()
        if type(value) is str:
            if "\x00" in value:
                return "the text holds the character U+0000, which cannot be stored"
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "the text holds half of a UTF-16 surrogate pair (a cut emoji?), which is not valid text"
        elif type(value) is list:
            stack.extend(value)
        elif type(value) is dict:
            stack.extend(value)
            stack.extend(value.values())
    return None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


# json.loads, except that NaN and Infinity (which PostgreSQL's jsonb refuses) are errors.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
decode_json = _DECODER.decode
_scan_once = _DECODER.scan_once
_LINE_ENDS = ("\n", "\r\n", "")


def loads_line(text: str):
    """decode_json for one JSONL line, about a third faster on the common shape.

    It calls the decoder's scanner directly (as `JSONDecoder.raw_decode` does) when the line starts with a
    value and ends right after it; any other line, valid or not, goes through `decode_json`, so results and
    error messages are exactly json.loads's.
    """
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError):
        return decode_json(text)
    return value if text[end:] in _LINE_ENDS else decode_json(text)


def json_reason(error: Exception) -> str:
    """'invalid JSON: Expecting ',' delimiter at column 17' for what decode_json or loads_line raised."""
    if isinstance(error, RecursionError):
        return "invalid JSON: nested too deeply"
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error.msg} at column {error.colno}"
    return f"invalid JSON: {error}"
