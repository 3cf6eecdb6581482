"""Exact fingerprints and MinHash near-duplicate groups of error-notebook cases (pure functions, no database)."""

import sys
import unicodedata

import numpy as np
import pytest
from datasketch import MinHash

from datasets_app.dedup import (
    _INVISIBLE,
    fingerprint,
    group_near_duplicates,
    near_duplicate_text,
    normalise,
    shingle_hash,
    shingles,
    signature,
    signature_bytes,
    signature_from_bytes,
)

ENGLISH = (
    "Our refund policy allows customers to return any unused product within thirty days of delivery. "
    "Refunds are issued to the original payment method after the warehouse inspects the returned item, "
    "which usually takes five business days, and shipping costs are not refunded."
)
ENGLISH_SAME_TOPIC = (
    "To request a refund, open your order history, choose the item you want to send back and print the prepaid "
    "shipping label. We will email you once the money has been returned to your credit card account."
)
CHINESE = (
    "我们的退款政策允许客户在收到商品后三十天内退回任何未使用的商品。"
    "仓库检查退回的商品后，退款将退回到原支付方式，通常需要五个工作日。"
)
CHINESE_SAME_TOPIC = "如需申请退款，请打开订单记录，选择要退回的商品并打印预付运单。款项退回到您的信用卡账户后，我们会发邮件通知您。"


def conversation(user: str = "How do I get my money back?", system: str = "You are a support assistant."):
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def stored(*texts: str) -> list[tuple[int, bytes]]:
    """(case id, signature bytes) pairs numbered from 1, as read from the database."""
    return [(case_id, signature_bytes(signature(text))) for case_id, text in enumerate(texts, start=1)]


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


# normalise


def test_normalise_folds_full_width_forms_and_case():
    assert normalise("ＡＢＣ　Ｄｅｆ１２３！") == "abc def123!"
    assert normalise("Straße") == "strasse"


def test_normalise_removes_invisible_characters():
    assert normalise("\ufeffre\u200bfund\u200d po\xadlicy\u2060") == "refund policy"


def test_normalise_collapses_every_whitespace_run_to_one_space_and_strips():
    assert normalise("  refund \t\n\n policy\u3000\xa0now \r\n") == "refund policy now"


def test_normalise_treats_a_space_between_an_invisible_and_a_space_as_one_run():
    assert normalise("refund \u200b policy") == "refund policy"


def test_normalise_keeps_chinese_and_folds_its_full_width_punctuation():
    assert normalise("退款政策，需要 五个工作日？……") == "退款政策,需要 五个工作日?......"


def test_normalise_takes_the_same_result_through_its_fast_paths_as_through_the_full_one():
    def reference(text: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).casefold().split())

    for code_point in range(0x10000):
        if 0xD800 <= code_point < 0xE000:
            continue
        char = chr(code_point)
        for text in (f"a{char}b", f" {char}  Ω退\n{char}"):
            assert normalise(text) == reference(text), hex(code_point)
            assert normalise(normalise(text)) == normalise(text), hex(code_point)


def test_the_invisible_characters_are_the_format_and_non_whitespace_control_characters():
    expected = {
        chr(cp)
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) == "Cf"
        or (unicodedata.category(chr(cp)) == "Cc" and not chr(cp).isspace())
    }
    everything = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp < 0xE000)
    assert set(_INVISIBLE.findall(everything)) == expected


# fingerprint


def test_fingerprint_ignores_whitespace_case_full_width_and_zero_width_differences():
    plain = fingerprint(conversation("Refund ABC order 42"), "Sorry, no refunds.")
    assert fingerprint(conversation("  refund   abc\norder 42 "), "sorry, NO refunds.") == plain
    assert (
        fingerprint(
            conversation("Ｒｅｆｕｎｄ ＡＢＣ ｏｒｄｅｒ ４２"), "Ｓｏｒｒｙ，　ｎｏ ｒｅｆｕｎｄｓ．"
        )
        == plain
    )
    assert fingerprint(conversation("Re\u200bfund ABC\ufeff order 42"), "Sorry, no\u200b refunds.") == plain


def test_fingerprint_changes_when_a_word_changes():
    assert fingerprint(conversation("refund order 42"), "no") != fingerprint(
        conversation("refund order 43"), "no"
    )
    assert fingerprint(conversation(), "no refunds") != fingerprint(conversation(), "no returns")


def test_fingerprint_changes_when_roles_are_swapped():
    user_first = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    swapped = [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "hi"}]
    assert fingerprint(user_first, "bye") != fingerprint(swapped, "bye")


def test_fingerprint_changes_when_messages_are_reordered():
    one = [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}]
    assert fingerprint(one, "x") != fingerprint(one[::-1], "x")


def test_fingerprint_keeps_the_boundaries_between_messages_and_the_bad_output():
    together = fingerprint([{"role": "user", "content": "hello world"}], "")
    assert fingerprint([{"role": "user", "content": "hello"}], "world") != together
    split = [{"role": "user", "content": "hello"}, {"role": "user", "content": "world"}]
    assert fingerprint(split, "") != together
    assert fingerprint([], "user hello") != fingerprint([{"role": "user", "content": "hello"}], "")


def test_fingerprint_is_a_sha256_hex_digest_that_ignores_extra_keys_and_treats_no_content_as_empty():
    value = fingerprint([{"role": "assistant", "content": None, "tool_calls": [1]}], "x")
    assert value == fingerprint([{"role": "assistant", "content": ""}], "x")
    assert value == fingerprint([{"role": "assistant"}], "x")
    assert len(value) == 64 and int(value, 16) >= 0


# shingles and signatures


def test_shingles_are_character_trigrams_without_spaces():
    assert shingles("Ab c") == {b"abc"}
    assert shingles("退款 政策") == {"退款政".encode(), "款政策".encode()}
    assert shingles("hi") == {b"hi"}
    assert shingles(" \u200b ") == set()


def test_near_duplicate_text_is_the_user_contents_and_bad_output_without_the_system_prompt():
    messages = [
        {"role": "system", "content": "You are a bank assistant."},
        {"role": "user", "content": "Refund  ME"},
        {"role": "assistant", "content": "Which order?"},
        {"role": "user", "content": "Order 42"},
    ]
    assert near_duplicate_text(messages, "No.") == "refund me order 42 no."
    other_system = [{**messages[0], "content": "Be brief."}, *messages[1:]]
    assert near_duplicate_text(other_system, "No.") == near_duplicate_text(messages, "No.")


def test_signature_is_a_datasketch_minhash_of_the_shingles():
    for text in (ENGLISH, CHINESE, "ab", ""):
        minhash = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
        minhash.update_batch(shingles(text))
        assert np.array_equal(signature(text), minhash.hashvalues)
        assert signature(text).dtype == np.uint32


def test_signature_depends_on_num_perm_and_seed():
    assert len(signature(ENGLISH, num_perm=64)) == 64
    assert not np.array_equal(signature(ENGLISH, seed=2), signature(ENGLISH))


def test_signature_agreement_estimates_the_jaccard_similarity_of_the_shingles():
    edited = ENGLISH.replace("thirty days of delivery", "two weeks of purchase")
    estimate = np.mean(signature(ENGLISH, num_perm=1024) == signature(edited, num_perm=1024))
    assert estimate == pytest.approx(exact_jaccard(ENGLISH, edited), abs=0.05)


def test_signature_bytes_round_trip_in_512_bytes():
    sig = signature(CHINESE)
    data = signature_bytes(sig)
    assert len(data) == 512
    assert np.array_equal(signature_from_bytes(data), sig)
    assert signature_from_bytes(data).dtype == np.uint32


def test_signature_from_bytes_rejects_a_partial_value():
    with pytest.raises(ValueError):
        signature_from_bytes(b"\x00" * 7)


# group_near_duplicates


def test_a_one_word_edit_of_an_english_text_is_a_near_duplicate():
    assert len(ENGLISH.split()) >= 40
    edited = ENGLISH.replace("thirty", "sixty")
    assert group_near_duplicates(stored(ENGLISH, edited)) == {1: 1, 2: 1}


def test_a_one_character_edit_of_a_chinese_paragraph_is_a_near_duplicate():
    assert 55 <= len(CHINESE) <= 70
    edited = CHINESE.replace("三十天", "六十天")
    assert group_near_duplicates(stored(CHINESE, edited)) == {1: 1, 2: 1}


def test_unrelated_texts_on_the_same_topic_are_not_grouped():
    assert group_near_duplicates(stored(ENGLISH, ENGLISH_SAME_TOPIC, CHINESE, CHINESE_SAME_TOPIC)) == {}


def test_groups_are_transitive_and_named_by_their_smallest_case_id():
    a = ENGLISH
    b = a.replace("thirty", "sixty").replace("five business", "ten business")
    c = b.replace("unused product", "unopened product").replace("shipping costs", "delivery fees")
    assert group_near_duplicates(stored(a, b, c), threshold=0.9) == {1: 1, 2: 1, 3: 1}
    assert np.mean(signature(a) == signature(c)) < 0.9  # a and c meet only through b
    items = [(30, signature_bytes(signature(a))), (7, signature_bytes(signature(c))), (12, stored(b)[0][1])]
    items.append((5, signature_bytes(signature(CHINESE))))
    assert group_near_duplicates(items, threshold=0.9) == {7: 7, 12: 7, 30: 7}


def test_the_threshold_decides_whether_a_pair_is_grouped():
    edited = ENGLISH.replace("thirty days of delivery", "two weeks of purchase").replace(
        "original payment", "store credit"
    )
    assert 0.65 <= exact_jaccard(ENGLISH, edited) <= 0.8
    assert group_near_duplicates(stored(ENGLISH, edited), threshold=0.6) == {1: 1, 2: 1}
    assert group_near_duplicates(stored(ENGLISH, edited), threshold=0.9) == {}


def test_grouping_accepts_any_iterable_and_is_empty_for_fewer_than_two_cases():
    assert group_near_duplicates(iter(stored(ENGLISH, ENGLISH))) == {1: 1, 2: 1}
    assert group_near_duplicates(stored(ENGLISH)) == {}
    assert group_near_duplicates([]) == {}


def test_grouping_rejects_signatures_of_another_size_and_repeated_case_ids():
    with pytest.raises(ValueError, match="expected 512"):
        group_near_duplicates([(1, signature_bytes(signature(ENGLISH, num_perm=64)))])
    with pytest.raises(ValueError, match="unique"):
        group_near_duplicates([(1, stored(ENGLISH)[0][1]), (1, stored(CHINESE)[0][1])])
    with pytest.raises(ValueError, match="threshold"):
        group_near_duplicates(stored(ENGLISH, ENGLISH), threshold=0)
    with pytest.raises(ValueError, match="threshold"):
        group_near_duplicates(stored(ENGLISH, ENGLISH), threshold=1)
