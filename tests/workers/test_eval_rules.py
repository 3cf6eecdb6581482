"""Rules declared per dataset or run: validation names every bad rule, and each kind passes and fails as it should."""

import pytest

from workers.evaluate import rules as rules_module
from workers.evaluate.rules import RuleError, apply_rules, rules_summary, validate_rules

PERSON = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


def check(rule, text):
    [result] = apply_rules([rule], text)
    return result


def problems_of(rules):
    with pytest.raises(RuleError) as caught:
        validate_rules(rules)
    return caught.value.problems


def test_validation_names_each_bad_rule_by_position_name_and_kind():
    problems = problems_of(
        [
            {"kind": "regex_must", "pattern": "ok"},
            {"kind": "regex_must", "name": "no apology", "pattern": "[sorry"},
            {"kind": "json_schema", "schema": {"type": "nope"}},
            {"kind": "json_schema", "schema": "{not json"},
            {"kind": "shout"},
        ]
    )
    assert len(problems) == 4
    assert problems[0].startswith(
        'rule 2 "no apology" (regex_must): invalid regular expression: unterminated'
    )
    assert problems[1].startswith("rule 3 (json_schema): invalid JSON Schema")
    assert problems[2].startswith("rule 4 (json_schema): schema is not valid JSON")
    assert problems[3].startswith("rule 5 (shout): unknown kind 'shout'")


def test_validation_reports_missing_fields_wrong_types_and_impossible_bounds_together():
    problems = problems_of(
        [
            "not a rule",
            {"kind": "regex_must_not"},
            {"kind": "regex_must", "pattern": "x", "flags": "iq"},
            {"kind": "keywords_required", "keywords": "refund"},
            {"kind": "keywords_forbidden", "keywords": ["x"], "case_sensitive": "yes"},
            {"kind": "length", "min_chars": 10, "max_chars": 5},
            {"kind": "length"},
            {"kind": "length", "max_chars": -1},
            {"kind": "json_valid", "schema": {}},
        ]
    )
    assert problems == [
        "rule 1: must be an object, got str",
        "rule 2 (regex_must_not): pattern is required and must be non-empty text",
        "rule 3 (regex_must): flags must be text made of imsx, got 'iq'",
        "rule 4 (keywords_required): keywords must be a non-empty list of non-empty texts",
        "rule 5 (keywords_forbidden): case_sensitive must be true or false, got 'yes'",
        "rule 6 (length): min_chars (10) is greater than max_chars (5)",
        "rule 7 (length): give min_chars, max_chars or both",
        "rule 8 (length): max_chars must be a whole number >= 0, got -1",
        "rule 9 (json_valid): unknown field schema",
    ]


def test_validation_rejects_nested_quantifiers_that_backtrack_exponentially():
    [problem] = problems_of([{"kind": "regex_must", "pattern": r"^(\w+\s?)+$"}])
    assert "nested quantifiers" in problem and "possessive" in problem
    validate_rules([{"kind": "regex_must", "pattern": r"^(\w++\s?)+$"}])  # the suggested rewrite is accepted
    validate_rules([{"kind": "regex_must", "pattern": r"(?>\d+,)*\d+|a{2,5}b+"}])


def test_validation_normalises_rules_and_parses_schema_text():
    [regex, schema] = validate_rules(
        [
            {"kind": "regex_must", "pattern": "a", "flags": "si"},
            {"kind": "json_schema", "schema": '{"type": "object"}'},
        ]
    )
    assert regex == {"kind": "regex_must", "name": "regex_must", "pattern": "a", "flags": "is"}
    assert schema["schema"] == {"type": "object"}


@pytest.mark.parametrize(
    ("rule", "text", "passed", "detail"),
    [
        ({"kind": "regex_must", "pattern": r"order #\d+"}, "Your order #123 shipped", True, ""),
        ({"kind": "regex_must", "pattern": r"order #\d+"}, "Your order shipped", False, "pattern not found"),
        ({"kind": "regex_must", "pattern": "refund", "flags": "i"}, "REFUND issued", True, ""),
        ({"kind": "regex_must_not", "pattern": r"as an ai"}, "Sure, here it is", True, ""),
        (
            {"kind": "regex_must_not", "pattern": r"as an ai", "flags": "i"},
            "As an AI I",
            False,
            "found: 'As an AI'",
        ),
        ({"kind": "json_valid"}, '{"a": 1}', True, ""),
        ({"kind": "json_valid"}, "Here:\n```json\n[1, 2]\n```\nDone.", True, ""),
        ({"kind": "json_valid"}, "{'a': 1}", False, "not valid JSON: Expecting property name"),
        ({"kind": "json_schema", "schema": PERSON}, '{"name": "Li", "age": 30}', True, ""),
        ({"kind": "json_schema", "schema": PERSON}, '```json\n{"name": "Li", "age": 30}\n```', True, ""),
        (
            {"kind": "json_schema", "schema": PERSON},
            '{"name": "Li", "age": "x"}',
            False,
            "at $.age: 'x' is not",
        ),
        ({"kind": "json_schema", "schema": PERSON}, '{"name": "Li"}', False, "'age' is a required property"),
        ({"kind": "json_schema", "schema": PERSON}, "no json here", False, "not valid JSON"),
        ({"kind": "keywords_required", "keywords": ["Refund", "退款"]}, "refund 已退款", True, ""),
        (
            {"kind": "keywords_required", "keywords": ["refund", "apology"]},
            "refund",
            False,
            "missing: apology",
        ),
        (
            {"kind": "keywords_required", "keywords": ["Refund"], "case_sensitive": True},
            "refund",
            False,
            "missing",
        ),
        ({"kind": "keywords_forbidden", "keywords": ["damn"]}, "all good", True, ""),
        ({"kind": "keywords_forbidden", "keywords": ["damn"]}, "DAMN it", False, "found: damn"),
        ({"kind": "keywords_forbidden", "keywords": ["Damn"], "case_sensitive": True}, "damn", True, ""),
        ({"kind": "length", "min_chars": 3, "max_chars": 5}, "four", True, ""),
        ({"kind": "length", "min_chars": 3}, "hi", False, "2 characters, fewer than the minimum 3"),
        ({"kind": "length", "max_chars": 3}, "你好世界", False, "4 characters, more than the maximum 3"),
    ],
)
def test_each_rule_kind_passes_and_fails_where_it_should(rule, text, passed, detail):
    result = check(rule, text)
    assert result["passed"] is passed
    assert detail in result["detail"]
    if passed:
        assert result["detail"] == ""


def test_results_carry_position_name_and_kind():
    results = apply_rules(
        [{"kind": "length", "max_chars": 1, "name": "short"}, {"kind": "json_valid"}], '{"a": 1}'
    )
    assert [(r["rule"], r["name"], r["kind"], r["passed"]) for r in results] == [
        (1, "short", "length", False),
        (2, "json_valid", "json_valid", True),
    ]


def test_applying_invalid_rules_raises_the_same_rule_error():
    with pytest.raises(RuleError, match="rule 1 .regex_must.: invalid regular expression"):
        apply_rules([{"kind": "regex_must", "pattern": "("}], "text")


def test_a_pattern_too_slow_for_the_text_fails_instead_of_hanging(monkeypatch):
    monkeypatch.setattr(rules_module, "REGEX_TIME_LIMIT_S", 0.05)
    result = check({"kind": "regex_must_not", "pattern": r".*a.*b"}, "a" * 5000)  # cubic: ~40 s unguarded
    assert result["passed"] is False
    assert "took longer than 0.05 s" in result["detail"]
    assert (
        check({"kind": "regex_must_not", "pattern": r".*a.*b"}, "a then b")["passed"] is False
    )  # still works


def test_regexes_only_look_at_the_first_max_regex_chars(monkeypatch):
    monkeypatch.setattr(rules_module, "MAX_REGEX_CHARS", 10)
    assert check({"kind": "regex_must", "pattern": "needle"}, "x" * 10 + "needle")["passed"] is False
    assert check({"kind": "keywords_required", "keywords": ["needle"]}, "x" * 10 + "needle")["passed"] is True


def test_summary_gives_pass_rates_per_rule_and_the_share_passing_everything():
    rules = [
        {"kind": "length", "max_chars": 5, "name": "short"},
        {"kind": "keywords_required", "keywords": ["ok"]},
    ]
    per_example = [apply_rules(rules, text) for text in ("ok", "ok but long", "no", "fine ok")]
    summary = rules_summary(per_example)
    assert summary["examples"] == 4
    assert summary["all_passed"] == 1 and summary["all_passed_rate"] == 0.25
    assert [(r["name"], r["passed"], r["checked"], r["pass_rate"]) for r in summary["rules"]] == [
        ("short", 2, 4, 0.5),
        ("keywords_required", 3, 4, 0.75),
    ]
    assert rules_summary([])["all_passed_rate"] is None


def test_rules_holding_values_json_cannot_store_are_refused():
    with pytest.raises(RuleError, match="only JSON values"):
        apply_rules([{"kind": "keywords_required", "keywords": {"a", "b"}}], "a b")
