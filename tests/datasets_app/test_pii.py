"""Scrubbing personal data and sensitive words from error-notebook text at ingest (no database needed)."""

from collections import Counter

import pytest

from datasets_app.pii import SensitiveWords, scrub, scrub_fields


def with_id_check(first17: str) -> str:
    """A Chinese resident ID: 17 digits and their ISO 7064 MOD 11-2 check character."""
    total = sum(int(digit) * (2 ** (17 - i) % 11) for i, digit in enumerate(first17))
    return first17 + "10X98765432"[total % 11]


def luhn_ok(number: str) -> bool:
    total = 0
    for i, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def with_luhn_check(partial: str) -> str:
    return next(partial + d for d in "0123456789" if luhn_ok(partial + d))


def test_the_test_helpers_agree_with_known_numbers():
    assert with_id_check("11010519491231002") == "11010519491231002X"
    assert with_luhn_check("411111111111111") == "4111111111111111"


# E-mail


def test_an_email_address_inside_chinese_text_is_replaced():
    assert scrub("请联系zhang.san@example.com谢谢") == ("请联系[EMAIL]谢谢", Counter(EMAIL=1))


def test_a_mail_address_made_of_a_phone_number_is_one_email_not_a_phone():
    assert scrub("邮箱13812345678@qq.com，电话13912345678") == (
        "邮箱[EMAIL]，电话[PHONE]",
        Counter(EMAIL=1, PHONE=1),
    )


@pytest.mark.parametrize("text", ["@张三 你看一下", "user@localhost", "a @ b", "Python 3.12 @decorator"])
def test_an_at_sign_without_a_dotted_domain_is_left_alone(text):
    assert scrub(text) == (text, Counter())


# Chinese resident IDs


@pytest.mark.parametrize(
    "number", ["11010519491231002X", "11010519491231002x", with_id_check("44030620000229123")]
)
def test_a_resident_id_with_a_valid_check_character_is_replaced(number):
    assert scrub(f"身份证号{number}。") == ("身份证号[ID_CN]。", Counter(ID_CN=1))


def test_a_resident_id_with_a_wrong_check_character_is_left_alone():
    prefix = "11010519491231002"
    wrong = next(prefix + d for d in "0123456789" if not luhn_ok(prefix + d))
    assert scrub(f"身份证号{wrong}") == (f"身份证号{wrong}", Counter())


def test_an_18_digit_number_failing_the_id_check_but_passing_luhn_is_a_bank_card():
    number = with_luhn_check("11010519491231002")
    assert number != "11010519491231002X"
    assert scrub(number) == ("[BANK_CARD]", Counter(BANK_CARD=1))


@pytest.mark.parametrize("first17", ["11010519491331002", "11010519490230002", "11010519000229002"])
def test_an_id_with_an_impossible_birth_date_is_not_an_id(first17):
    # month 13, 30 February, and 29 February 1900 (not a leap year) all carry a correct check character
    assert "ID_CN" not in scrub(with_id_check(first17))[1]


def test_an_id_glued_to_letters_or_more_digits_is_not_an_id():
    assert "ID_CN" not in scrub("A11010519491231002X")[1]
    assert "ID_CN" not in scrub("911010519491231002X")[1]


# Bank cards


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "6222 0212 3456 7890 128",  # 19-digit UnionPay, grouped 4-4-4-4-3
        with_luhn_check("622202123456789012"),
        with_luhn_check("378282246310005"[:-1]),  # 15-digit Amex, ungrouped
    ],
)
def test_a_luhn_valid_card_number_is_replaced(card):
    assert luhn_ok(card.replace(" ", "").replace("-", ""))
    assert scrub(f"卡号：{card}，请退款") == ("卡号：[BANK_CARD]，请退款", Counter(BANK_CARD=1))


def test_a_luhn_invalid_card_number_is_left_alone():
    assert scrub("card 4111 1111 1111 1112") == ("card 4111 1111 1111 1112", Counter())


@pytest.mark.parametrize(
    "text",
    [
        with_luhn_check("41111111111"),  # 12 digits: too short
        with_luhn_check("4111111111111111111"),  # 20 digits: too long
        "4111 1111-1111 1111",  # mixed separators
        "3.4111111111111111",  # the fraction of a decimal
    ],
)
def test_a_luhn_valid_run_that_is_not_shaped_like_a_card_is_left_alone(text):
    assert "BANK_CARD" not in scrub(text)[1]


# Phone numbers


@pytest.mark.parametrize(
    "phone",
    [
        "13812345678",
        "+8613812345678",
        "+86 138 1234 5678",
        "+86-138-1234-5678",
        "0086 13812345678",
        "86-13812345678",
        "138-1234-5678",
        "138 1234 5678",
    ],
)
def test_a_mainland_mobile_is_replaced_bare_prefixed_or_grouped(phone):
    assert scrub(f"请拨{phone}联系我") == ("请拨[PHONE]联系我", Counter(PHONE=1))


@pytest.mark.parametrize("phone", ["010-12345678", "0755-1234567", "(021) 87654321"])
def test_a_mainland_landline_is_replaced(phone):
    assert scrub(f"座机 {phone}。") == ("座机 [PHONE]。", Counter(PHONE=1))


@pytest.mark.parametrize(
    "phone", ["+44 20 7946 0958", "+1 (415) 555-2671", "+49-30-1234567", "+33 (0)1 42 68 53 00"]
)
def test_an_international_number_is_replaced(phone):
    assert scrub(f"Call {phone} today") == ("Call [PHONE] today", Counter(PHONE=1))


@pytest.mark.parametrize(
    "text", ["138123456789", "A13812345678", "13812345678abc", "12812345678", "+1 2024", "3+1234567"]
)
def test_a_phone_shape_glued_to_other_characters_or_too_short_is_left_alone(text):
    assert "PHONE" not in scrub(text)[1]


# IP addresses


@pytest.mark.parametrize("address", ["192.168.1.10", "8.8.8.8", "255.255.255.255", "0.0.0.0"])
def test_an_ipv4_address_is_replaced(address):
    assert scrub(f"服务器{address}宕机了") == ("服务器[IP]宕机了", Counter(IP=1))


@pytest.mark.parametrize("text", ["256.1.1.1", "192.168.1.300", "1.2.3", "v1.2.3.4", "1.2.3.4.5"])
def test_a_dotted_number_that_is_not_an_ipv4_address_is_left_alone(text):
    assert scrub(text) == (text, Counter())


def test_a_bare_four_part_version_is_an_ipv4_address_and_is_replaced():
    # Documented: `1.2.3.4` is a valid address, so it goes even when it was meant as a version.
    assert scrub("upgrade to 1.2.3.4") == ("upgrade to [IP]", Counter(IP=1))


@pytest.mark.parametrize(
    "address",
    [
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "::1",
        "::ffff:192.0.2.1",
    ],
)
def test_an_ipv6_address_is_replaced_full_or_compressed(address):
    assert scrub(f"from {address}, then") == ("from [IP], then", Counter(IP=1))


@pytest.mark.parametrize(
    "text", ["12:30:45", "2024-01-15 12:30:45", "std::vector", "a::b", "00:1a:2b:3c:4d:5e", "::"]
)
def test_times_mac_addresses_and_scopes_are_not_ipv6(text):
    assert scrub(text) == (text, Counter())


# What stays


@pytest.mark.parametrize(
    "text",
    [
        "2024年的订单",
        "价格199.00元",
        "订单号12345已发货",
        "共计1,299.00元",
        "圆周率3.14159265358979",
        "第2步：打开设置",
        "I bought 2 items for $19.99 in 2023.",
        "2024-01-15",
        "订单号20240115",
    ],
)
def test_ordinary_numbers_are_left_alone(text):
    assert scrub(text) == (text, Counter())


def test_chinese_text_without_personal_data_is_returned_unchanged_with_empty_counts():
    text, counts = scrub("模型把退款政策说错了，用户很不满意。")
    assert text == "模型把退款政策说错了，用户很不满意。"
    assert counts == Counter() and counts["PHONE"] == 0


def test_full_width_digits_from_chinese_input_methods_are_scrubbed_and_the_rest_kept():
    assert scrub("电话１３８１２３４５６７８，邮箱ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ。") == (
        "电话[PHONE]，邮箱[EMAIL]。",
        Counter(PHONE=1, EMAIL=1),
    )


def test_every_kind_in_one_text_is_counted_and_no_original_survives():
    originals = [
        "li.si@example.cn",
        "11010519491231002X",
        "4111 1111 1111 1111",
        "+86 139 8765 4321",
        "010-12345678",
        "10.0.0.8",
        "2001:db8::8",
    ]
    text, counts = scrub("用户{}，身份证{}，卡号{}，手机{}，座机{}，来自{}和{}。".format(*originals))
    assert text == "用户[EMAIL]，身份证[ID_CN]，卡号[BANK_CARD]，手机[PHONE]，座机[PHONE]，来自[IP]和[IP]。"
    assert counts == Counter(EMAIL=1, ID_CN=1, BANK_CARD=1, PHONE=2, IP=2)
    assert not any(original in text for original in originals)


def test_text_that_already_holds_a_placeholder_keeps_it_and_counts_only_new_finds():
    assert scrub("[PHONE] 和 13812345678") == ("[PHONE] 和 [PHONE]", Counter(PHONE=1))


# Sensitive words


def test_a_mask_word_becomes_stars_of_the_same_length():
    words = SensitiveWords([("password", "mask"), ("内部代号", "mask")])
    assert words.apply("the password of 内部代号X") == ("the ******** of ****X", set())


def test_a_flag_word_stays_in_the_text_and_is_reported_as_configured():
    words = SensitiveWords([("VPN", "flag"), ("竞品", "flag")])
    assert words.apply("连上vpn后对比竞品") == ("连上vpn后对比竞品", {"VPN", "竞品"})


def test_ascii_words_match_ignoring_case():
    words = SensitiveWords([("Secret", "mask")])
    assert words.apply("SECRET secret SeCrEt") == ("****** ****** ******", set())


def test_the_longest_of_overlapping_words_wins():
    words = SensitiveWords([("机密", "mask"), ("机密文件", "mask"), ("abc", "mask"), ("abc def", "mask")])
    assert words.apply("机密文件和机密, abc def and abc") == ("****和**, ******* and ***", set())


def test_hundreds_of_words_sharing_prefixes_each_match_whole():
    words = SensitiveWords(
        [(f"project{i}", "mask") for i in range(500)] + [(f"代号{i}", "flag") for i in range(500)]
    )
    names = [f"project{i}" for i in range(0, 500, 7)]
    assert words.apply(" ".join(names)) == (" ".join("*" * len(name) for name in names), set())
    assert words.apply("代号1、代号10、代号499x") == ("代号1、代号10、代号499x", {"代号1", "代号10"})


def test_an_english_word_inside_a_longer_word_is_left_alone_but_chinese_matches_anywhere():
    words = SensitiveWords([("secret", "mask"), ("机密", "mask")])
    # only ASCII letters and digits join words: `secret_key` holds the word `secret`
    assert words.apply("secretary 保密机密性 secret_key") == ("secretary 保密**性 ******_key", set())


def test_a_mask_word_inside_a_flag_word_is_masked_and_the_flag_still_reported():
    words = SensitiveWords([("密码", "mask"), ("密码重置", "flag")])
    assert words.apply("用户要求密码重置") == ("用户要求**重置", {"密码重置"})


def test_no_words_change_nothing():
    words = SensitiveWords([])
    assert not words
    assert words.apply("anything 机密") == ("anything 机密", set())


def test_every_bad_entry_is_reported_at_once():
    with pytest.raises(ValueError) as error:
        SensitiveWords([("", "mask"), ("ok", "flag"), ("x", "delete")])
    assert "entry 1" in str(error.value) and "entry 3" in str(error.value) and "'delete'" in str(error.value)


# Whole cases


def test_scrub_fields_cleans_every_field_and_sums_what_it_found():
    words = SensitiveWords([("机密", "mask"), ("竞品", "flag")])
    report = scrub_fields(
        {
            "conversation": "我的手机13812345678，机密",
            "bad_output": "已发到a@b.com",
            "expected_output": "对比竞品",
        },
        words,
    )
    assert report.fields == {
        "conversation": "我的手机[PHONE]，**",
        "bad_output": "已发到[EMAIL]",
        "expected_output": "对比竞品",
    }
    assert report.pii == Counter(PHONE=1, EMAIL=1)
    assert report.flagged == {"竞品"}
