"""The upload parser: what a PM's JSONL or CSV file becomes, and how each mistake in it is reported."""

import codecs
import io
import json

from datasets_app.ingest import CaseRow, LineError, detect_format, parse_file

TAGS = {"hallucination", "wrong_unit", "tone"}


def parse(content: bytes | str, filename: str = "cases.jsonl", **options):
    data = content.encode() if isinstance(content, str) else content
    parsed = parse_file(
        io.BytesIO(data), filename=filename, known_tags=options.pop("known_tags", TAGS), **options
    )
    return parsed, list(parsed)


def items(content: bytes | str, filename: str = "cases.jsonl", **options) -> list:
    return parse(content, filename, **options)[1]


def jsonl(*objects) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o, ensure_ascii=False)) + "\n" for o in objects)


def chat(*turns, **fields) -> dict:
    """{"messages": [(role, content), ...], **fields}"""
    return {"messages": [{"role": role, "content": content} for role, content in turns], **fields}


def errors_of(found: list) -> list[tuple[int, str]]:
    return [(e.line, e.field) for e in found if isinstance(e, LineError)]


def only_error(found: list) -> LineError:
    assert len(found) == 1 and isinstance(found[0], LineError), found
    return found[0]


GOOD = chat(("user", "什么时候发货?"), ("assistant", "已经发货了"))


# --- JSONL, chat form -------------------------------------------------------------------------------------------


def test_it_takes_the_last_assistant_turn_of_a_chat_as_the_bad_answer():
    line = chat(
        ("system", "你是客服助手"),
        ("user", "订单 12345 什么时候发货?"),
        ("assistant", "请稍等"),
        ("user", "When will it ship?"),
        ("assistant", "It shipped yesterday."),
        expected="订单尚未发货。",
        tags=["Hallucination", " wrong unit "],
        severity="high",
        task_type="chat",
        product="shop",
        feature="orders",
        model_version="v3",
        metadata={"ticket": 7},
    )
    parsed, found = parse(jsonl(line))

    assert (parsed.format, parsed.encoding) == ("jsonl", "utf-8")
    [row] = found
    assert row.line == 1
    assert [m["role"] for m in row.messages] == ["system", "user", "assistant", "user"]
    assert row.messages[-1] == {"role": "user", "content": "When will it ship?"}
    assert row.bad_output == "It shipped yesterday."
    assert row.expected_output == "订单尚未发货。"
    assert row.tags == ["hallucination", "wrong_unit"]
    assert (row.severity, row.task_type, row.product, row.feature, row.model_version) == (
        "high",
        "chat",
        "shop",
        "orders",
        "v3",
    )
    assert row.metadata == {"ticket": 7}
    assert row.raw == json.dumps(line, ensure_ascii=False)


def test_it_fills_defaults_for_the_optional_fields():
    [row] = items(jsonl(GOOD))

    assert (row.expected_output, row.task_type, row.tags, row.severity, row.metadata) == (
        "",
        "chat",
        [],
        "medium",
        {},
    )


def test_it_joins_openai_text_content_parts():
    parts = [{"type": "text", "text": "第一段"}, {"type": "text", "text": "second part"}]
    line = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": parts[:1]}]}

    [row] = items(jsonl(line))

    assert row.messages == [{"role": "user", "content": "第一段\nsecond part"}]
    assert row.bad_output == "第一段"


def test_it_rejects_image_content_parts_naming_the_part():
    line = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": "a cat"},
        ]
    }

    error = only_error(items(jsonl(line)))

    assert (error.field, error.reason) == (
        "messages[0].content[0]",
        "only text parts can be imported, got a 'image_url' part",
    )


def test_it_accepts_capitalised_severity_and_task_type_and_null_optional_fields():
    [row] = items(
        jsonl({**GOOD, "severity": "Critical", "task_type": "Extraction", "expected": None, "tags": None})
    )

    assert (row.severity, row.task_type, row.expected_output, row.tags) == ("critical", "extraction", "", [])


def test_it_rejects_a_tool_turn_with_a_clear_reason():
    line = chat(("user", "weather?"), ("tool", "{}"), ("assistant", "sunny"))

    error = only_error(items(jsonl(line)))

    assert (error.line, error.field) == (1, "messages[1].role")
    assert "only system, user and assistant turns can be imported" in error.reason


def test_it_rejects_a_chat_without_an_assistant_turn():
    error = only_error(items(jsonl(chat(("user", "hi")))))

    assert error.field == "messages"
    assert "no assistant turn" in error.reason


def test_it_rejects_a_chat_whose_bad_answer_has_no_user_turn_before_it():
    error = only_error(items(jsonl(chat(("system", "be nice"), ("assistant", "hello")))))

    assert (error.field, error.reason) == (
        "messages",
        "no user turn before the bad answer (the last assistant turn)",
    )


def test_it_rejects_a_chat_that_goes_on_after_the_last_assistant_turn():
    error = only_error(items(jsonl(chat(("user", "hi"), ("assistant", "hello"), ("user", "and?")))))

    assert error.field == "messages[2]"
    assert "must end with the bad answer" in error.reason


def test_it_rejects_an_empty_bad_answer():
    error = only_error(items(jsonl(chat(("user", "hi"), ("assistant", "  ")))))

    assert (error.field, error.reason) == (
        "messages[1].content",
        "the bad answer (the last assistant turn) is empty",
    )


# --- JSONL, flat form -------------------------------------------------------------------------------------------


def test_it_reads_the_flat_form_with_a_system_prompt():
    line = {
        "input": "1 斤是多少克?",
        "output": "1000 克",
        "expected": "500 克",
        "system": "你是助手",
        "tags": ["wrong_unit"],
    }

    [row] = items(jsonl(line))

    assert row.messages == [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "1 斤是多少克?"},
    ]
    assert (row.bad_output, row.expected_output, row.tags) == ("1000 克", "500 克", ["wrong_unit"])


def test_it_reads_the_flat_form_without_a_system_prompt():
    [row] = items(jsonl({"input": "hi", "output": "bye"}))

    assert row.messages == [{"role": "user", "content": "hi"}]


def test_it_rejects_a_flat_line_without_its_output():
    error = only_error(items(jsonl({"input": "hi", "expected": "hello"})))

    assert (error.line, error.field) == (1, "output")
    assert "missing" in error.reason


def test_it_rejects_a_line_mixing_the_chat_and_flat_forms():
    error = only_error(items(jsonl({**GOOD, "input": "hi"})))

    assert error.field == "(line)"
    assert "not both" in error.reason


def test_it_names_the_fields_it_found_when_a_line_has_no_conversation():
    error = only_error(items(jsonl({"prompt": "hi", "completion": "bye"})))

    assert error.reason.endswith("found: prompt, completion")


# --- JSONL, bad input -------------------------------------------------------------------------------------------


def test_it_reports_invalid_json_with_the_decoders_message():
    error = only_error(items('{"input": "a" "output": "b"}\n'))

    assert (error.line, error.field) == (1, "(line)")
    assert error.reason == "invalid JSON: Expecting ',' delimiter at column 15"
    assert error.raw == '{"input": "a" "output": "b"}'


def test_it_rejects_a_line_that_is_not_an_object():
    error = only_error(items('["input", "output"]\n'))

    assert (error.field, error.reason) == ("(line)", "each line must be a JSON object, got a list")


def test_it_hints_at_jsonl_when_given_a_json_array():
    found = items(json.dumps([GOOD, GOOD], indent=1), "cases.json")

    assert "JSONL has one object per line" in found[0].reason


def test_it_rejects_wrong_types_naming_each_field():
    line = {**GOOD, "tags": "hallucination", "metadata": [1], "severity": 3, "expected": 5, "product": None}

    found = items(jsonl(line))

    assert errors_of(found) == [(1, "metadata"), (1, "expected"), (1, "tags"), (1, "severity")]
    reasons = {e.field: e.reason for e in found}
    assert reasons["tags"] == "tags must be a list of strings, got a string"
    assert reasons["metadata"] == "metadata must be an object, got a list"
    assert reasons["severity"] == "severity must be a string, got a number"


def test_it_lists_the_allowed_values_of_an_unknown_severity_or_task_type():
    found = items(jsonl({**GOOD, "severity": "urgent", "task_type": "summary"}))

    assert [e.reason for e in found] == [
        "unknown severity 'urgent'; allowed: low, medium, high, critical",
        "unknown task_type 'summary'; allowed: chat, classification, extraction",
    ]


def test_it_rejects_an_unknown_tag_naming_it_and_who_manages_tags():
    error = only_error(items(jsonl({**GOOD, "tags": ["tone", "Made Up"]})))

    assert (error.line, error.field) == (1, "tags")
    assert "unknown tag 'made_up'" in error.reason
    assert "tags are managed by admins" in error.reason


def test_it_gathers_every_problem_of_a_line():
    line = {
        "messages": [
            {"role": "robot", "content": "x"},
            {"role": "user", "content": 1},
            {"role": "assistant", "content": ""},
        ],
        "tags": ["nope", 2],
        "severity": "urgent",
        "product": "p" * 101,
    }

    found = items(jsonl(GOOD, line))

    assert isinstance(found[0], CaseRow)
    assert errors_of(found[1:]) == [
        (2, "messages[0].role"),
        (2, "messages[1].content"),
        (2, "messages[2].content"),
        (2, "tags"),
        (2, "tags[1]"),
        (2, "severity"),
        (2, "product"),
    ]
    assert all(e.raw == json.dumps(line) for e in found[1:])
    assert found[-1].reason == "product is 101 characters; the limit is 100"


def test_it_keeps_unknown_fields_in_metadata_but_reports_likely_typos():
    kept, typo = items(jsonl({**GOOD, "trace_id": "t-1", "metadata": {"a": 1}}, {**GOOD, "severty": "high"}))

    assert kept.metadata == {"trace_id": "t-1", "a": 1}
    assert (typo.line, typo.field, typo.reason) == (
        2,
        "severty",
        "unknown field 'severty'; did you mean 'severity'?",
    )


def test_it_reports_invalid_utf8_on_one_line_and_reads_the_next():
    data = jsonl(GOOD).encode() + b'{"input": "\xff\xfe", "output": "x"}\n' + jsonl(GOOD).encode()

    found = items(data)

    assert [type(item) for item in found] == [CaseRow, LineError, CaseRow]
    assert (found[1].line, found[1].field) == (2, "(line)")
    assert found[1].reason.startswith("invalid UTF-8 at byte 12")


def test_it_tolerates_a_utf8_bom_in_jsonl():
    parsed, [row] = parse(codecs.BOM_UTF8 + jsonl(GOOD).encode())

    assert (parsed.encoding, row.bad_output) == ("utf-8-sig", "已经发货了")


def test_it_rejects_nan_and_the_nul_character_which_postgres_cannot_store():
    found = items(
        '{"input": "a", "output": "b", "metadata": {"score": NaN}}\n{"input": "a\\u0000", "output": "b"}\n'
    )

    assert errors_of(found) == [(1, "(line)"), (2, "(line)")]
    assert found[0].reason == "invalid JSON: NaN is not allowed"
    assert "U+0000" in found[1].reason


def test_it_rejects_half_an_emoji_but_keeps_escaped_whole_ones():
    whole, cut = items(
        '{"input": "\\ud83d\\ude00 hi", "output": "x"}\n{"input": "hi \\ud83d", "output": "x"}\n'
    )

    assert whole.messages[0]["content"] == "\U0001f600 hi"
    assert (cut.line, cut.field) == (2, "(line)")
    assert "surrogate" in cut.reason


# --- lines: blank, over-long, order -----------------------------------------------------------------------------


def test_it_skips_blank_lines_silently_and_keeps_physical_line_numbers():
    found = items("\n" + jsonl(GOOD) + "   \n\r\n" + jsonl(GOOD))

    assert [row.line for row in found] == [2, 5]


def test_it_skips_an_over_long_line_without_affecting_the_next_one():
    long_line = json.dumps({"input": "x" * 500, "output": "y"})

    found = items(jsonl(GOOD, long_line, GOOD), max_line_bytes=200)

    assert [type(item) for item in found] == [CaseRow, LineError, CaseRow]
    assert (found[1].line, found[1].field) == (2, "(line)")
    assert found[1].reason == f"line is {len(long_line)} bytes; the limit is 200 bytes"
    assert found[2].line == 3 and found[2].bad_output == "已经发货了"


def test_it_says_how_big_an_over_long_line_is_in_megabytes():
    long_line = json.dumps({"input": "x" * 1_363_000, "output": "y"})

    error = only_error(items(long_line))

    assert error.reason == "line is 1.3 MB; the limit is 1 MB"
    assert len(error.raw) == 2000


def test_it_keeps_rows_and_errors_in_file_order():
    lines = [GOOD if i % 3 else "not json" for i in range(30)]

    found = items(jsonl(*lines))

    assert [item.line for item in found] == list(range(1, 31))
    assert [isinstance(item, LineError) for item in found] == [i % 3 == 0 for i in range(30)]


def test_it_reports_an_empty_file():
    parsed, found = parse(b"")

    assert [(e.line, e.field, e.reason) for e in found] == [(0, "(file)", "the file is empty")]


def test_it_reports_a_file_of_blank_lines():
    assert [(e.line, e.field) for e in items("\n\n  \n")] == [(0, "(file)")]


def test_it_refuses_an_excel_workbook_and_utf16_text():
    workbook = only_error(items(b"PK\x03\x04" + bytes(100), "cases.xlsx"))
    utf16 = only_error(items("input,output\n".encode("utf-16"), "cases.csv"))

    assert "Excel workbook" in workbook.reason
    assert "UTF-16" in utf16.reason


def test_it_refuses_a_file_with_old_mac_line_endings():
    error = only_error(items("input,output\ra,b\r", "cases.csv"))

    assert (error.line, error.field) == (0, "(file)")
    assert "CR only" in error.reason


def test_it_reads_a_stream_that_cannot_seek():
    class Upload(io.RawIOBase):  # hands out a few bytes per read, like a socket
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.data.read(min(len(buffer), 7))
            buffer[: len(chunk)] = chunk
            return len(chunk)

        def seekable(self):
            return False

    parsed = parse_file(Upload(jsonl(*[GOOD] * 2000).encode()), filename="x.jsonl", known_tags=TAGS)

    assert [row.line for row in parsed] == list(range(1, 2001))


# --- CSV --------------------------------------------------------------------------------------------------------

CSV_TEXT = (
    "input,output,expected,system,tags,severity,task_type,product,feature,model_version,metadata\n"
    '1 斤是多少克?,1000 克,500 克,你是助手,"wrong_unit;Hallucination",high,chat,shop,faq,v3,"{""k"": 1}"\n'
    "hello,bye,,,,,,,,,\n"
)


def test_it_reads_a_utf8_csv():
    parsed, [first, second] = parse(CSV_TEXT, "cases.csv")

    assert (parsed.format, parsed.encoding) == ("csv", "utf-8")
    assert first.line == 2
    assert first.messages == [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "1 斤是多少克?"},
    ]
    assert (first.bad_output, first.expected_output, first.tags) == (
        "1000 克",
        "500 克",
        ["wrong_unit", "hallucination"],
    )
    assert (first.severity, first.product, first.feature, first.model_version) == (
        "high",
        "shop",
        "faq",
        "v3",
    )
    assert first.metadata == {"k": 1}
    assert first.raw.startswith("1 斤是多少克?,1000 克")
    assert (second.line, second.messages, second.severity, second.tags) == (
        3,
        [{"role": "user", "content": "hello"}],
        "medium",
        [],
    )


def test_it_reads_a_utf8_csv_with_a_bom():
    parsed, [first, _] = parse(codecs.BOM_UTF8 + CSV_TEXT.encode(), "cases.csv")

    assert parsed.encoding == "utf-8-sig"
    assert first.messages[-1]["content"] == "1 斤是多少克?"


def test_it_detects_a_gb18030_csv():
    parsed, [first, _] = parse(CSV_TEXT.encode("gb18030"), "cases.csv")

    assert parsed.encoding == "gb18030"
    assert (first.bad_output, first.expected_output) == ("1000 克", "500 克")


def test_it_splits_csv_tags_on_every_usual_separator():
    data = "input,output,tags\na,b,hallucination、wrong_unit|tone\nc,d,tone， hallucination; wrong unit\n"

    assert [row.tags for row in items(data, "cases.csv")] == [
        ["hallucination", "wrong_unit", "tone"],
        ["tone", "hallucination", "wrong_unit"],
    ]


def test_it_keeps_unknown_csv_columns_in_metadata():
    data = 'input,output,Trace ID,metadata\na,b,t-1,"{""k"": 1}"\nc,d,,\n'

    first, second = items(data, "cases.csv")

    assert (first.metadata, second.metadata) == ({"Trace ID": "t-1", "k": 1}, {})


def test_it_reads_semicolon_and_tab_separated_files():
    for text in ("input;output\na;b\n", "input\toutput\na\tb\n"):
        [row] = items(text, "cases.csv")
        assert row.bad_output == "b"


def test_it_numbers_csv_records_like_a_spreadsheet_does():
    data = 'input,output\n"two\nlines",x\n\nthird,"y"\n'

    assert [row.line for row in items(data, "cases.csv")] == [2, 4]


def test_it_rejects_a_ragged_csv_row():
    error = only_error(items("input,output,expected,tags\na,b,c,tone,extra\n", "cases.csv"))

    assert (error.line, error.field, error.reason) == (2, "(line)", "row has 5 cells; the header has 4")


def test_it_gathers_every_problem_of_a_csv_row():
    data = 'input,output,severity,tags,metadata\n" ",,urgent,made up,{oops}\n'

    assert errors_of(items(data, "cases.csv")) == [
        (2, "metadata"),
        (2, "input"),
        (2, "output"),
        (2, "tags"),
        (2, "severity"),
    ]


def test_it_needs_a_csv_header_with_input_and_output():
    error = only_error(items("question,answer\na,b\n", "cases.csv"))

    assert (error.line, error.field) == (1, "(file)")
    assert "missing: input, output (found: question, answer)" in error.reason


def test_it_reports_a_misspelt_csv_column_instead_of_importing_defaults():
    error = only_error(items("input,output,severty\na,b,high\n", "cases.csv"))

    assert error.reason == "unknown column 'severty'; did you mean 'severity'?"


def test_it_reports_a_csv_header_naming_a_column_twice():
    error = only_error(items("input,output,Tags,tags\na,b,,\n", "cases.csv"))

    assert (error.line, error.field, error.reason) == (
        1,
        "(file)",
        "the column 'tags' appears more than once in the header",
    )


def test_it_reports_a_csv_with_a_header_but_no_cases():
    assert [e.reason for e in items("input,output\n\n", "cases.csv")] == [
        "the file has a header row but no cases"
    ]


def test_it_reports_invalid_utf8_deep_in_a_csv_and_reads_on():
    filler = "".join(f"question {i},answer {i}\n" for i in range(5000)).encode()  # > 64 KB of plain ASCII
    data = b"input,output\n" + filler + "坏,".encode() + b"\xff\n" + b"last,row\n"

    parsed, found = parse(data, "cases.csv")

    assert parsed.encoding == "utf-8"
    assert [type(item) for item in found[-2:]] == [LineError, CaseRow]
    assert (found[-2].line, found[-2].field) == (5002, "(line)")
    assert found[-2].reason.startswith("invalid UTF-8")
    assert found[-1].bad_output == "row"


def test_it_skips_an_over_long_csv_line_and_reads_the_next():
    data = "input,output\na," + "x" * 300 + "\nb,y\n"

    found = items(data, "cases.csv", max_line_bytes=100)

    assert [(e.line, e.field) for e in found if isinstance(e, LineError)] == [(2, "(line)")]
    assert found[-1].line == 3 and found[-1].bad_output == "y"


# --- format detection -------------------------------------------------------------------------------------------


def test_it_detects_the_format_by_extension_then_by_content():
    assert detect_format("cases.JSONL", b"input,output") == "jsonl"
    assert detect_format("dir.v2/cases.ndjson", b"") == "jsonl"
    assert detect_format("cases.json", b"") == "jsonl"
    assert detect_format("export.csv", b"{") == "csv"
    assert detect_format("export.txt", codecs.BOM_UTF8 + b'  {"input": 1}') == "jsonl"
    assert detect_format("export", b"input,output\n") == "csv"
