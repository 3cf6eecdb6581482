"""Steps a-d on small fixtures: normalise, filter (with token counts), sensitive words, integrity."""

import pytest

from datasets_app.pii import SensitiveWords
from datasets_app.pipeline.filters import Filter, detect_language, is_boilerplate, is_repetitive
from datasets_app.pipeline.integrity import Integrity
from datasets_app.pipeline.normalise import Normalise
from datasets_app.pipeline.recipe import FilterStep, IntegrityStep, NormaliseStep, SensitiveStep
from datasets_app.pipeline.sensitive import Sensitive
from datasets_app.pipeline.tokens import TokenCounter, approximate_tokens
from datasets_app.pipeline.types import BuildError, Example, StepStats

ANSWER = "Open Settings, choose Orders and press Refund next to the order you want to send back."
ANSWER_ZH = "请打开设置，选择订单，然后点击你想退回的订单旁边的退款按钮。"


def chat(user: str = "How do I get a refund?", answer: str = ANSWER, system: str | None = None) -> Example:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return Example("chat", {"messages": messages}, "file", {"file": "a.jsonl", "line": 1})


def run(step, *examples: Example) -> tuple[list[Example], StepStats]:
    stats = StepStats(step.name)
    kept = list(step(list(examples), stats))
    return kept, stats


# ---- a. normalise ----------------------------------------------------------------------------------------------


def test_it_turns_full_width_letters_into_ascii_but_keeps_chinese_punctuation():
    [row], _ = run(Normalise(NormaliseStep()), chat("ＡＢＣ１２３，怎么退款？", "好的…请稍等！"))

    assert row.fields["messages"][0]["content"] == "ABC123，怎么退款？"
    assert row.fields["messages"][1]["content"] == "好的…请稍等！"


def test_it_removes_invisible_characters_and_collapses_spaces_but_keeps_indentation():
    answer = "Run\u200b this:\r\n\r\n\r\n\r\n    print( 'hi' )   \n\tdone\ufeff   now  "
    [row], stats = run(Normalise(NormaliseStep()), chat("  too   many\tspaces ", answer))

    assert row.fields["messages"][0]["content"] == "too many spaces"
    assert row.fields["messages"][1]["content"] == "Run this:\n\n    print( 'hi' )\n\tdone now"
    assert stats.notes == ["1 rows changed"]


def test_it_normalises_every_text_of_every_task_type():
    rows = [
        Example("instruction", {"instruction": "Ｓｕｍ", "input": " 1  2 ", "output": "3\u200b"}, "file", {}),
        Example("classification", {"text": "好  评", "label": " pos "}, "file", {}),
        Example(
            "preference",
            {
                "prompt": [{"role": "user", "content": "Ｈｉ"}],
                "chosen": "Hello  there",
                "rejected": "Go\u200baway",
            },
            "file",
            {},
        ),  # fmt: skip
    ]
    out, _ = run(Normalise(NormaliseStep()), *rows)

    assert out[0].fields == {"instruction": "Sum", "input": "1 2", "output": "3"}
    assert out[1].fields == {"text": "好 评", "label": "pos"}
    assert out[2].fields == {
        "prompt": [{"role": "user", "content": "Hi"}],
        "chosen": "Hello there",
        "rejected": "Goaway",
    }


def test_it_leaves_each_part_of_normalisation_off_when_asked():
    off = NormaliseStep(nfkc=False, strip_invisible=False, collapse_whitespace=False)
    [row], stats = run(Normalise(off), chat("ＡＢ  c\u200b", "x"))

    assert row.fields["messages"][0]["content"] == "ＡＢ  c\u200b"
    assert stats.notes == []


# ---- token counts ------------------------------------------------------------------------------------------------


def test_it_counts_a_cjk_character_as_one_token_and_a_word_as_one_point_three():
    assert approximate_tokens(["我们的退款政策"]) == 7
    assert approximate_tokens(["hello brave new world"]) == 6  # 4 words × 1.3, rounded up
    assert approximate_tokens(["用Python写代码", "ok"]) == 4 + 3  # 4 CJK + 2 words × 1.3, rounded up
    assert approximate_tokens([""]) == 0


def test_it_counts_tokens_with_a_local_tokenizer_folder(tmp_path):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "how": 1, "do": 2, "i": 3, "get": 4, "a": 5, "refund": 6, "?": 7}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(tmp_path)

    counter = TokenCounter(str(tmp_path))

    assert counter.count(chat("how do i get a refund ?", "refund refund")) == 7 + 2


def test_it_fails_the_build_when_the_tokenizer_folder_is_missing(tmp_path):
    with pytest.raises(BuildError, match="does not exist"):
        TokenCounter(str(tmp_path / "nowhere"))


# ---- b. filter ---------------------------------------------------------------------------------------------------


def reasons(cfg: FilterStep, *examples: Example) -> list[str]:
    step, out = Filter(cfg), []
    for example in examples:
        out.append(step.reason(example))
    return out


def test_it_drops_rows_outside_the_token_bounds_and_keeps_the_count():
    rows = [chat("hi", "ok"), chat(answer=ANSWER_ZH), chat(answer=ANSWER_ZH * 20)]
    kept, stats = run(Filter(FilterStep(min_tokens=5, max_tokens=200)), *rows)

    assert kept == [rows[1]]
    assert rows[1].tokens == approximate_tokens(["How do I get a refund?", ANSWER_ZH])
    assert stats.dropped == {"too_short": 1, "too_long": 1}
    assert stats.examples["too_short"] == [{"ref": rows[0].ref, "fields": rows[0].fields}]


def test_it_drops_empty_repetitive_and_boilerplate_answers():
    rows = [
        chat(answer="   "),
        chat(answer="哈哈哈哈哈哈哈哈哈哈"),
        chat(answer="I don't know. I don't know. I don't know. I don't know."),
        chat(answer="ok ok ok"),
        chat(answer="As an AI language model, I cannot browse the internet."),
        chat(answer="作为一个AI，我无法回答这个问题。"),
        chat(answer="I'm sorry, but I cannot help with that."),
        chat(answer=ANSWER),
        chat(answer=ANSWER_ZH),
    ]

    assert reasons(FilterStep(), *rows) == [
        "empty_answer", "repetition", "repetition", "repetition", "boilerplate", "boilerplate", "boilerplate", "", ""
    ]  # fmt: skip


def test_it_does_not_take_numbers_or_rules_for_repetition():
    for answer in ("1000000", "The total is 1,000,000,000 yuan.", "------", "谢谢", "abab"):
        assert not is_repetitive(answer), answer
    assert is_repetitive("Sure! " + "ha" * 40)
    assert is_repetitive("你好，我想退货。" * 5)


def test_it_keeps_degenerate_answers_when_asked_to():
    assert reasons(FilterStep(drop_degenerate=False), chat(answer="哈哈哈哈哈哈哈哈")) == [""]


def test_it_finds_boilerplate_whatever_the_spacing_and_apostrophes():
    assert is_boilerplate("I’m sorry, but I can’t do that")
    assert is_boilerplate("作为一个 AI 助手")
    assert not is_boilerplate("As a rule, refunds take five days.")


def test_it_keeps_only_the_languages_asked_for():
    rows = [
        chat("怎么退款？", ANSWER_ZH),
        chat(),
        chat("Как вернуть?", "Откройте настройки и нажмите возврат."),
    ]

    assert reasons(FilterStep(languages=["zh"]), *rows) == ["", "language", "language"]
    assert reasons(FilterStep(languages=["en", "other"]), *rows) == ["language", "", ""]


def test_it_tells_languages_apart_by_script():
    assert detect_language(["使用Python编程很简单"]) == "zh"
    assert detect_language(["I met 张三 at the park yesterday"]) == "en"
    assert detect_language(["こんにちは、元気ですか"]) == "other"
    assert detect_language(["12345"]) == "other"


def test_it_takes_the_answer_of_each_task_type():
    rows = [
        Example("instruction", {"instruction": "Add", "input": "1 2", "output": ""}, "file", {}),
        Example("classification", {"text": "好评", "label": ""}, "file", {}),
        Example("preference", {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "", "rejected": "Go"}, "file", {}),
        Example("preference", {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello!", "rejected": "Go"}, "file", {}),
    ]  # fmt: skip

    assert reasons(FilterStep(), *rows) == ["empty_answer", "empty_answer", "empty_answer", ""]


# ---- c. sensitive ------------------------------------------------------------------------------------------------

WORDS = SensitiveWords([("机密", "mask"), ("secret", "mask"), ("competitor", "flag")])


def test_it_masks_sensitive_words_in_every_text_and_counts_the_rows():
    rows = [chat("What is the secret code?", "这是机密。"), chat(answer="Ask the competitor."), chat()]
    kept, stats = run(Sensitive(SensitiveStep("mask"), WORDS), *rows)

    assert kept[0].fields["messages"][0]["content"] == "What is the ****** code?"
    assert kept[0].fields["messages"][1]["content"] == "这是**。"
    assert kept[1].fields["messages"][1]["content"] == "Ask the competitor."
    assert stats.notes == ["1 rows with sensitive words masked", "1 rows holding flag words (kept)"]
    assert stats.rows_out == 3


def test_it_drops_rows_holding_any_sensitive_word_when_asked():
    rows = [chat("the secret?"), chat(answer="Ask the competitor."), chat()]
    kept, stats = run(Sensitive(SensitiveStep("drop"), WORDS), *rows)

    assert kept == [rows[2]]
    assert stats.dropped == {"sensitive_word": 2}


def test_it_passes_rows_unchanged_when_off_or_without_words():
    for step in (Sensitive(SensitiveStep("off"), WORDS), Sensitive(SensitiveStep("drop"), None)):
        kept, stats = run(step, chat("the secret?"))
        assert kept[0].fields["messages"][0]["content"] == "the secret?"
        assert stats.rows_in == stats.rows_out == 1


# ---- d. integrity ------------------------------------------------------------------------------------------------


def integrity_reasons(cfg: IntegrityStep, *examples: Example) -> list[str]:
    step = Integrity(cfg)
    return [step.reason(example) for example in examples]


def test_it_checks_chat_roles_alternate_and_end_with_the_assistant():
    def conversation(*roles: str) -> Example:
        return Example("chat", {"messages": [{"role": r, "content": "x"} for r in roles]}, "file", {})

    rows = [
        conversation("system", "user", "assistant", "user", "assistant"),
        conversation("user", "user", "assistant"),
        conversation("user", "assistant", "user"),
        conversation("assistant", "user", "assistant"),
        conversation("system"),
        conversation("user", "system", "assistant"),
        chat(answer=""),
    ]

    assert integrity_reasons(IntegrityStep(), *rows) == [
        "", "roles_not_alternating", "not_ending_with_assistant", "roles_not_alternating",
        "not_ending_with_assistant", "roles_not_alternating", "empty_turn",
    ]  # fmt: skip


def test_it_checks_preference_prompts_and_answers():
    prompt = [{"role": "user", "content": "Hi"}]
    rows = [
        Example("preference", {"prompt": prompt, "chosen": "Hello!", "rejected": "Go away."}, "file", {}),
        Example(
            "preference",
            {"prompt": prompt + [{"role": "assistant", "content": "?"}], "chosen": "a", "rejected": "b"},
            "file",
            {},
        ),  # fmt: skip
        Example("preference", {"prompt": prompt, "chosen": "Hello!", "rejected": ""}, "file", {}),
        Example("preference", {"prompt": prompt, "chosen": "Same", "rejected": "Same"}, "file", {}),
    ]

    assert integrity_reasons(IntegrityStep(), *rows) == [
        "", "prompt_not_ending_with_user", "empty_rejected", "chosen_equals_rejected"
    ]  # fmt: skip


def test_it_checks_instruction_and_classification_rows():
    rows = [
        Example("instruction", {"instruction": "Add", "input": "", "output": "3"}, "file", {}),
        Example("instruction", {"instruction": " ", "input": "1", "output": "3"}, "file", {}),
        Example("classification", {"text": "好评", "label": "positive"}, "file", {}),
        Example("classification", {"text": "差评", "label": "angry"}, "file", {}),
    ]

    assert integrity_reasons(IntegrityStep(labels=["positive", "negative"]), *rows) == [
        "", "empty_instruction", "", "unknown_label"
    ]  # fmt: skip
    assert rows[2].category == "positive"


def test_it_requires_json_answers_when_asked():
    rows = [chat(answer='{"refund": true}'), chat(answer="refund: yes")]
    kept, stats = run(Integrity(IntegrityStep(json_output=True)), *rows)

    assert kept == [rows[0]]
    assert stats.dropped == {"invalid_json": 1}
