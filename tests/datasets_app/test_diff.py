"""The side-by-side diff marks changed words in English and changed characters in Chinese, and escapes everything."""

from django.utils.safestring import SafeString

from datasets_app.diff import diff_html, tokenize


def test_it_marks_whole_changed_words_in_english():
    left, right = diff_html("The refund takes 5 days.", "The refund takes 10 business days.")
    assert left == "The refund takes <del>5</del> days."
    assert right == "The refund takes <ins>10 business</ins> days."


def test_it_marks_single_changed_characters_in_chinese():
    left, right = diff_html("退款需要五天。", "退款需要十天。")
    assert left == "退款需要<del>五</del>天。"
    assert right == "退款需要<ins>十</ins>天。"


def test_mixed_text_is_cut_into_words_cjk_characters_spaces_and_punctuation():
    assert tokenize("GPT-4 说：ok  done") == ["GPT", "-", "4", " ", "说", "：", "ok", "  ", "done"]


def test_html_in_either_text_is_escaped_inside_and_outside_the_marks():
    left, right = diff_html('<script>alert("x")</script> & more', "<b>bold</b> & more")
    assert "<script" not in left and "<b>" not in right
    assert left.startswith("&lt;<del>script</del>&gt;") and "&quot;x&quot;" in left
    assert right.startswith("&lt;<ins>b</ins>&gt;") and right.endswith(" &amp; more")
    assert isinstance(left, SafeString) and isinstance(right, SafeString)


def test_identical_texts_have_no_marks():
    left, right = diff_html("Same answer, 同样的回答.", "Same answer, 同样的回答.")
    assert left == right == "Same answer, 同样的回答."
    assert "<del>" not in left and "<ins>" not in right


def test_an_empty_side_is_all_removed_or_all_added():
    assert diff_html("old text", "") == ("<del>old text</del>", "")
    assert diff_html("", "new") == ("", "<ins>new</ins>")


def test_long_texts_fall_back_to_lines_and_still_mark_the_changed_word():
    lines = [f"line {i} says something about topic {i % 7}" for i in range(400)]
    changed = list(lines)
    changed[200] = "line 200 says nothing about topic 4"
    left, right = diff_html("\n".join(lines), "\n".join(changed))
    assert left.count("<del>") == 1 and "<del>something</del>" in left
    assert right.count("<ins>") == 1 and "<ins>nothing</ins>" in right
