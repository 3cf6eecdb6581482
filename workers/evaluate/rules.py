"""Code-based rules a dataset or a run declares, checked on every model output.

A rule is a plain dict (so it round-trips through JSON and the database); ``name`` is optional everywhere:

    {"kind": "regex_must" | "regex_must_not", "pattern": "...", "flags": "i"}     flags: any of "imsx"
    {"kind": "json_valid"}
    {"kind": "json_schema", "schema": {...} or its JSON text}
    {"kind": "keywords_required" | "keywords_forbidden", "keywords": ["..."], "case_sensitive": false}
    {"kind": "length", "min_chars": 1, "max_chars": 2000}                         at least one bound

``validate_rules`` returns the normalised rules or raises ``RuleError`` whose ``problems`` list every mistake at
once, each naming the rule by its 1-based position, its name and kind: ``rule 2 "no apology" (regex_must): invalid
regular expression: unterminated character set at position 0``. ``apply_rules`` gives one result per rule (the same
1-based ``rule`` number); ``json_valid`` and ``json_schema`` accept the JSON bare or inside a ```json fenced block.

Regular expressions come from users and run on model outputs, and Python's ``re`` backtracks. Three cheap guards:

1. Validation rejects nested variable quantifiers such as ``(a+)+`` or ``(\\w+\\s?)*``: these take exponential time
   (``(a+)+$`` on 40 "a"s and a "b" never finishes). The message suggests the possessive ``a++`` or an atomic
   group ``(?>...)``, which Python 3.11 supports and which cannot backtrack. Ambiguous alternations like
   ``(a|a)*`` are not detected; the time limit below catches them.
2. Only the first ``MAX_REGEX_CHARS`` (20,000) characters of a text are searched. Polynomial patterns remain:
   ``.*a.*b`` is cubic, measured 0.37 s on 1,000 "a"s, 2.2 s on 2,000 and 20 s on 4,000.
3. So each search runs under a ``REGEX_TIME_LIMIT_S`` (1 s) wall-clock limit: ``re`` checks for signals while it
   matches, so a SIGALRM timer (``signal.setitimer``) interrupts it; the rule then fails with a detail saying the
   pattern was too slow. The timer is only used in the main thread (Celery's prefork children run tasks there) and
   only when no other ITIMER_REAL is armed; elsewhere guards 1 and 2 stand alone.
The other kinds look at the whole text. Cost: the timer's four system calls make a regex rule ~50 µs instead of
~20 µs per text; validated rules and their compiled checkers are cached by content across ``apply_rules`` calls.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from functools import lru_cache

KINDS = (
    "regex_must",
    "regex_must_not",
    "json_valid",
    "json_schema",
    "keywords_required",
    "keywords_forbidden",
    "length",
)
FIELDS = {
    "regex_must": {"pattern", "flags"},
    "regex_must_not": {"pattern", "flags"},
    "json_valid": set(),
    "json_schema": {"schema"},
    "keywords_required": {"keywords", "case_sensitive"},
    "keywords_forbidden": {"keywords", "case_sensitive"},
    "length": {"min_chars", "max_chars"},
}
FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
MAX_REGEX_CHARS = 20_000
REGEX_TIME_LIMIT_S = 1.0
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)


class RuleError(ValueError):
    """Rules a user declared are wrong; ``problems`` names every bad rule and why."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) or "invalid rules")


# ---- validation ------------------------------------------------------------------------------------------------


def validate_rules(rules: list[dict]) -> list[dict]:
    """The rules normalised (every field present, schema parsed, flags sorted), or RuleError listing every problem."""
    if not isinstance(rules, list):
        raise RuleError([f"rules must be a list, got {type(rules).__name__}"])
    problems: list[str] = []
    normalised = []
    for position, rule in enumerate(rules, start=1):
        rule_problems: list[str] = []
        clean = _normalise(rule, rule_problems)
        label = _label(position, rule)
        problems.extend(f"{label}: {p}" for p in rule_problems)
        normalised.append(clean)
    if problems:
        raise RuleError(problems)
    return normalised


def _label(position: int, rule) -> str:
    if not isinstance(rule, dict):
        return f"rule {position}"
    name = rule.get("name")
    named = f" {json.dumps(name, ensure_ascii=False)}" if isinstance(name, str) and name else ""
    kind = rule.get("kind")
    return f"rule {position}{named}" + (f" ({kind})" if isinstance(kind, str) and kind else "")


def _normalise(rule, problems: list[str]) -> dict:
    if not isinstance(rule, dict):
        problems.append(f"must be an object, got {type(rule).__name__}")
        return {}
    kind = rule.get("kind")
    if kind not in KINDS:
        problems.append(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        return {}
    name = rule.get("name")
    if name is not None and not isinstance(name, str):
        problems.append("name must be text")
    unknown = sorted(set(rule) - FIELDS[kind] - {"kind", "name"})
    if unknown:
        problems.append(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    clean = {"kind": kind, "name": name if isinstance(name, str) and name else kind}
    if kind.startswith("regex"):
        clean.update(_check_regex(rule, problems))
    elif kind == "json_schema":
        clean["schema"] = _check_schema(rule.get("schema"), problems)
    elif kind.startswith("keywords"):
        clean.update(_check_keywords(rule, problems))
    elif kind == "length":
        clean.update(_check_length(rule, problems))
    return clean


def _check_regex(rule: dict, problems: list[str]) -> dict:
    pattern, flags = rule.get("pattern"), rule.get("flags", "")
    if not isinstance(flags, str) or set(flags) - set(FLAGS):
        problems.append(f"flags must be text made of {''.join(FLAGS)}, got {flags!r}")
        flags = ""
    if not isinstance(pattern, str) or not pattern:
        problems.append("pattern is required and must be non-empty text")
        return {"pattern": pattern, "flags": flags}
    try:
        re.compile(pattern, _flag_bits(flags))
    except re.error as exc:
        problems.append(f"invalid regular expression: {exc}")
    else:
        if _nested_quantifier(pattern, _flag_bits(flags)):
            problems.append(
                "nested quantifiers like (a+)+ can take exponential time; make the inner one possessive (a++) "
                "or wrap it in an atomic group (?>...)"
            )
    return {"pattern": pattern, "flags": "".join(sorted(set(flags)))}


def _flag_bits(flags: str) -> int:
    bits = 0
    for letter in flags:
        bits |= FLAGS.get(letter, 0)
    return bits


def _nested_quantifier(pattern: str, flags: int) -> bool:
    """True when a variable-length repeat sits inside a long or unbounded repeat without an atomic barrier."""
    try:
        from re import _constants as c
        from re import _parser as parser
    except ImportError:  # a Python without these internals: rely on the length cap and time limit
        return False
    repeats = (c.MAX_REPEAT, c.MIN_REPEAT)
    barriers = (c.ATOMIC_GROUP, c.POSSESSIVE_REPEAT)

    def walk(node, inside: bool) -> bool:
        if isinstance(node, tuple) and len(node) == 2 and isinstance(node[0], c._NamedIntConstant):
            op, av = node
            if op in repeats:
                low, high, body = av
                if inside and low != high and high > 1:  # an inner "?" cannot split a run two ways
                    return True
                return walk(body, inside or high == c.MAXREPEAT or high > 10)
            return walk(av, False if op in barriers else inside)
        if isinstance(node, list | tuple | parser.SubPattern):
            return any(walk(child, inside) for child in node)
        return False

    return walk(parser.parse(pattern, flags), False)


def _check_schema(schema, problems: list[str]):
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            problems.append(f"schema is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
            return None
    if not isinstance(schema, dict | bool):
        problems.append("schema is required: a JSON Schema object or its JSON text")
        return None
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        problems.append(f"invalid JSON Schema{f' at {where}' if where else ''}: {_short(exc.message)}")
    return schema


def _check_keywords(rule: dict, problems: list[str]) -> dict:
    keywords, case_sensitive = rule.get("keywords"), rule.get("case_sensitive", False)
    if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) and k for k in keywords):
        problems.append("keywords must be a non-empty list of non-empty texts")
    if not isinstance(case_sensitive, bool):
        problems.append(f"case_sensitive must be true or false, got {case_sensitive!r}")
    return {"keywords": keywords, "case_sensitive": case_sensitive is True}


def _check_length(rule: dict, problems: list[str]) -> dict:
    bounds = {key: rule.get(key) for key in ("min_chars", "max_chars")}
    for key, value in bounds.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.append(f"{key} must be a whole number >= 0, got {value!r}")
            bounds[key] = None
    if bounds["min_chars"] is None and bounds["max_chars"] is None and not problems:
        problems.append("give min_chars, max_chars or both")
    low, high = bounds["min_chars"], bounds["max_chars"]
    if low is not None and high is not None and low > high:
        problems.append(f"min_chars ({low}) is greater than max_chars ({high})")
    return bounds


# ---- checking --------------------------------------------------------------------------------------------------


def apply_rules(rules: list[dict], text: str) -> list[dict]:
    """One result per rule: {"rule": 1-based position, "name", "kind", "passed", "detail": why it failed or ""}."""
    results = []
    try:
        key = json.dumps(rules, sort_keys=True)
    except (TypeError, ValueError):
        raise RuleError(
            ["rules must hold only JSON values (text, numbers, true/false, lists, objects)"]
        ) from None
    for position, (rule, check) in enumerate(_prepared(key), start=1):
        passed, detail = check(text)
        results.append(
            {"rule": position, "name": rule["name"], "kind": rule["kind"], "passed": passed, "detail": detail}
        )
    return results


def rules_summary(per_example: list[list[dict]]) -> dict:
    """Pass counts and rates per rule, and the share of examples that passed every rule (None with no examples)."""
    n = len(per_example)
    rules: dict[int, dict] = {}
    for results in per_example:
        for r in results:
            entry = rules.setdefault(r["rule"], {"rule": r["rule"], "name": r["name"], "kind": r["kind"]})
            entry["passed"] = entry.get("passed", 0) + bool(r["passed"])
            entry["checked"] = entry.get("checked", 0) + 1
    for entry in rules.values():
        entry["pass_rate"] = entry["passed"] / entry["checked"]
    all_passed = sum(all(r["passed"] for r in results) for results in per_example)
    return {
        "examples": n,
        "all_passed": all_passed,
        "all_passed_rate": all_passed / n if n else None,
        "rules": [rules[k] for k in sorted(rules)],
    }


@lru_cache(maxsize=64)
def _prepared(rules_json: str) -> list:
    """Validated rules with their checkers, cached by content: an evaluation applies the same rules to every row."""
    return [(rule, _checker(rule)) for rule in validate_rules(json.loads(rules_json))]


def _checker(rule: dict):
    kind = rule["kind"]
    if kind.startswith("regex"):
        compiled, must = re.compile(rule["pattern"], _flag_bits(rule["flags"])), kind == "regex_must"
        return lambda text: _regex_check(compiled, text, must)
    if kind in ("json_valid", "json_schema"):
        validator = _validator(rule["schema"]) if kind == "json_schema" else None
        return lambda text: _json_check(text, validator)
    if kind.startswith("keywords"):
        return lambda text: _keywords_check(text, rule, kind == "keywords_required")
    return lambda text: _length_check(text, rule["min_chars"], rule["max_chars"])


def _regex_check(compiled: re.Pattern, text: str, must: bool) -> tuple[bool, str]:
    match, too_slow = _guarded_search(compiled, text[:MAX_REGEX_CHARS])
    if too_slow:
        return False, f"the pattern took longer than {REGEX_TIME_LIMIT_S:g} s on this text; simplify it"
    if must:
        return (True, "") if match else (False, "pattern not found")
    return (False, f"forbidden pattern found: {_short(match.group(0), 80)!r}") if match else (True, "")


class _RegexTimeout(Exception):
    pass


def _guarded_search(compiled: re.Pattern, text: str) -> tuple[re.Match | None, bool]:
    """(match, too_slow): the search under a SIGALRM timer where one can be used safely (see the module doc)."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        and signal.getsignal(signal.SIGALRM) is not None
    )
    if not usable:
        return compiled.search(text), False
    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:  # raise at most once, and never after the search is over
            armed[0] = False
            raise _RegexTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, REGEX_TIME_LIMIT_S)
            return compiled.search(text), False
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _RegexTimeout:
        return None, True
    finally:
        signal.signal(signal.SIGALRM, previous)


def _validator(schema):
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _json_check(text: str, validator) -> tuple[bool, str]:
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text.strip()
    try:
        value = json.loads(candidate)
    except json.JSONDecodeError as exc:
        return False, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if validator is None:
        return True, ""
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return True, ""
    shown = "; ".join(f"at {_json_path(e.absolute_path)}: {_short(e.message)}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return False, f"does not match the schema: {shown}{more}"


def _json_path(path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _keywords_check(text: str, rule: dict, required: bool) -> tuple[bool, str]:
    haystack = text if rule["case_sensitive"] else text.casefold()
    found = [k for k in rule["keywords"] if (k if rule["case_sensitive"] else k.casefold()) in haystack]
    if required:
        missing = [k for k in rule["keywords"] if k not in found]
        return (False, "missing: " + ", ".join(missing)) if missing else (True, "")
    return (False, "found: " + ", ".join(found)) if found else (True, "")


def _length_check(text: str, low: int | None, high: int | None) -> tuple[bool, str]:
    n = len(text)
    if low is not None and n < low:
        return False, f"{n} characters, fewer than the minimum {low}"
    if high is not None and n > high:
        return False, f"{n} characters, more than the maximum {high}"
    return True, ""


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
