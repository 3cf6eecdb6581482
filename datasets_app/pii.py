"""Scrub personal data from error-notebook text at ingest, before anything is stored or logged.

Pure Python (stdlib only, no Django) so the importer can call it in a tight loop over 100k+ rows a second.

`scrub(text)` returns the text with personal data replaced by typed placeholders and a `Counter` of the kinds
found (`{"PHONE": 2, "EMAIL": 1}`); the original values are not kept anywhere. The kinds, in the order they are
looked for (a span taken by an earlier kind is not looked at again):

1. `[EMAIL]`: `local@domain.tld` with an ASCII local part and a dotted domain ending in 2+ letters. First, because
   Chinese mail addresses are often a phone number (`13812345678@qq.com`).
2. `[ID_CN]`: an 18-character Chinese resident ID (17 digits and a digit or `X`) whose birth date (YYYYMMDD,
   1800-2099) is a real date and whose ISO 7064 MOD 11-2 check character matches. A number failing either test
   is left for the next kinds (it may be a bank card). 15-digit legacy IDs are not recognised: they carry no check
   digit, so a date test alone would take ordinary 15-digit order numbers.
3. `[BANK_CARD]`: 13-19 digits passing the Luhn check, written in one run or grouped in 4s by spaces or dashes
   (`4111 1111 1111 1111`, `6222-0212-3456-7890-123`). A run starting with 0 is not a card (no card number
   does), nor is one right after a `+` (that is a phone number in E.164 form, `+8613812345678`). One Luhn-valid
   number in ten passes by chance, so a long order id or a millisecond timestamp is occasionally taken as a card:
   scrubbing errs on the side of privacy.
4. `[PHONE]`: mainland mobiles `1[3-9]` + 9 digits, bare or after `+86`, `0086` or `86-`, optionally grouped
   3-4-4 by spaces or dashes; landlines `010-12345678`, `(0755) 1234567`; international numbers `+CC ...` with
   8-15 digits in all (E.164's limit) separated by single spaces or dashes, with at most parenthesised groups
   (`+44 20 7946 0958`, `+1 (415) 555-2671`).
5. `[IP]`: IPv6 in full, compressed or IPv4-mapped form (validated by `ipaddress`; it must hold a digit, so `::`
   and the C++ `a::b` stay), then IPv4 with every octet 0-255. Times (`12:30:45`) and MAC addresses are not valid
   IPv6 and stay. A bare `1.2.3.4` IS a valid IPv4 address and is replaced, even when it was meant as a version;
   `v1.2.3.4` and `1.2.3.4.5` stay.

Numbers must stand alone: no ASCII letter or digit right before or after, and not the fraction of a decimal
(`3.14159265358979` is not a card), so years, prices and short order ids (`2024`, `199.00`, `12345`) are never
touched. Chinese characters count as separators: `请拨13812345678谢谢` is scrubbed.

Full-width forms are matched too (`１３８１２３４５６７８`, `ａ＠ｂ．ｃｏｍ`, common from Chinese input methods): when
the text holds a full-width digit or `＠`, matching runs on a copy with full-width ASCII folded to ASCII, one
character for one, so spans map back to the original text. Text outside the replaced spans is always returned
as it was (full-width punctuation included).

Speed: text without any ASCII or full-width digit or `@` is returned at once (every kind needs one; IPv6 is
required to hold a digit, so a `:` alone does not count); the number kinds are only looked for where a digit
starts 7 characters of digits and ` -()`, IPv6 only with `::` or 7 colons, IPv4 only with 3 dots.

`SensitiveWords([(word, "mask" | "flag"), ...]).apply(text)` masks the "mask" words with one `*` per character
and returns the set of "flag" words found (as configured, not as written), which stay in the text. Matching
ignores case (`str.lower`: ASCII, and other cased scripts too); a word that begins (ends) with an ASCII letter or
digit only matches where no ASCII letter or digit comes right before (after) it, so `secret` does not match inside `secretary`, while Chinese words, which
have no word boundaries, match anywhere. Overlapping words of one action: leftmost first, then longest. Mask and
flag words are matched independently on the original text, so a mask word inside a flag word is still masked and
the flag word still reported.

`scrub_fields(fields, words)` applies both to every field of a case (personal data first) and sums what it found.
"""

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import mul

EMAIL = "EMAIL"
ID_CN = "ID_CN"
BANK_CARD = "BANK_CARD"
PHONE = "PHONE"
IP = "IP"
KINDS = (EMAIL, ID_CN, BANK_CARD, PHONE, IP)
MASK = "mask"
FLAG = "flag"
ACTIONS = (MASK, FLAG)

# Full-width ASCII (U+FF01-U+FF5E) and the ideographic space, folded one character for one. Only text holding
# a full-width digit or `＠` is folded (every kind needs one): full-width punctuation alone (`，：（）`) is common
# in Chinese and folding is slow.
_FOLD_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_FULL_WIDTH_KEY = re.compile("[\uff10-\uff19\uff20]")
_TRIGGER = re.compile("[0-9@\uff10-\uff19\uff20]")
_HAS_DIGIT = re.compile("[0-9]")
# Every ID, card and phone number is, from its first digit on, at least 7 characters of digits and ` -()`.
_NUMBER_START = re.compile("[0-9][0-9 ()-]{6}")
# Matched spans are blanked with this before the next kind is looked for; no pattern matches it.
_BLANK = "\x00"

_NUM_START = r"(?<![0-9A-Za-z])(?<![0-9]\.)"
_NUM_END = r"(?![0-9A-Za-z])(?!\.[0-9])"

# A pattern that begins with a character (class) lets `re` skip quickly to where a match can start; one that begins
# with a look-behind is tried at every position. Hot patterns therefore check "nothing glued on before" after
# their first character: `X(?<![...]X)`.
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-](?<![A-Za-z0-9._%+-]{2})[A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_ID_CN = re.compile(
    r"[1-9](?<![0-9A-Za-z][1-9])(?<![0-9]\.[1-9])"
    r"\d{5}(?:18|19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _NUM_END,
    re.ASCII,
)
_BANK_CARD = re.compile(
    r"[1-9](?<![0-9A-Za-z+][1-9])(?<![0-9]\.[1-9])"
    r"(?:\d{12,18}|\d{3}(?P<sep>[ -])\d{4}(?:(?P=sep)\d{4}){1,2}(?:(?P=sep)\d{1,3})?)" + _NUM_END,
    re.ASCII,
)
_PHONE = re.compile(
    _NUM_START + r"(?:"
    r"(?:(?:\+|00)86[ -]?|86-)?1[3-9]\d(?P<sep>[ -]?)\d{4}(?P=sep)\d{4}"  # mainland mobile
    r"|\(0\d{2,3}\)[ -]?\d{7,8}|0\d{2,3}-\d{7,8}"  # mainland landline
    r"|(?P<intl>\+[1-9]\d*(?:[ -]\d+|[ -]?\(\d+\)[ -]?\d+)*)"  # international; digits counted after
    r")" + _NUM_END,
    re.ASCII,
)
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![0-9A-Za-z:]|\.[0-9])",
    re.ASCII,
)
# Octets are checked after matching.
_IPV4 = re.compile(r"[0-9](?<![0-9A-Za-z.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9A-Za-z]|\.[0-9])")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # Luhn: a doubled digit minus 9 when above 9
_NOT_DIGITS = str.maketrans("", "", " -()+")


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check (the last digit is the check digit)."""
    return (
        sum(map(int, digits[-1::-2])) + sum(map(_DOUBLED.__getitem__, map(int, digits[-2::-2])))
    ) % 10 == 0


def cn_id_valid(number: str) -> bool:
    """Whether an 18-character Chinese resident ID has a real birth date and a matching MOD 11-2 check char."""
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return False
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if not (1800 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month]):
        return False
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return False
    return number[17].upper() == _ID_CHECK[sum(map(mul, map(int, number[:17]), _ID_WEIGHTS)) % 11]


def _is_id(m: re.Match) -> bool:
    return cn_id_valid(m.group())


def _is_card(m: re.Match) -> bool:
    digits = m.group().translate(_NOT_DIGITS)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_phone(m: re.Match) -> bool:
    intl = m.group("intl")
    return intl is None or 8 <= len(intl.translate(_NOT_DIGITS)) <= 15


def _is_ipv4(m: re.Match) -> bool:
    return all(octet == "0" or (octet[0] != "0" and int(octet) <= 255) for octet in m.group().split("."))


def _is_ipv6(m: re.Match) -> bool:
    candidate = m.group()
    if _HAS_DIGIT.search(candidate) is None:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


# (kind, pattern, validator or None, gate): the gate is a cheap test of the folded text that every match needs.
_PASSES = (
    (EMAIL, _EMAIL, None, lambda work: "@" in work),
    (ID_CN, _ID_CN, _is_id, None),
    (BANK_CARD, _BANK_CARD, _is_card, None),
    (PHONE, _PHONE, _is_phone, None),
    (IP, _IPV6, _is_ipv6, lambda work: "::" in work or work.count(":") >= 7),
    (IP, _IPV4, _is_ipv4, lambda work: work.count(".") >= 3),
)
# An empty Counter without Counter.__init__'s Python-level update() call: a quarter of the cost, and clean text
# is most of what ingest sees.
_new_counter = Counter.__new__


def scrub(text: str) -> tuple[str, Counter[str]]:
    """Replace personal data in `text` with `[EMAIL]`, `[ID_CN]`, `[BANK_CARD]`, `[PHONE]`, `[IP]`.

    Returns the scrubbed text and how many of each kind were replaced (kinds not found are absent).
    """
    if _TRIGGER.search(text) is None:
        return text, _new_counter(Counter)
    work = text if text.isascii() or _FULL_WIDTH_KEY.search(text) is None else text.translate(_FOLD_WIDTH)
    # The number kinds (gate None) are looked for only from one character (`+`, `(`) before the first place where
    # one could begin.
    digits = _NUMBER_START.search(work)
    spans: list[tuple[int, int, str]] = []
    for kind, pattern, valid, gate in _PASSES:
        if gate is None:
            if digits is None:
                continue
            matches = pattern.finditer(work, max(0, digits.start() - 1))
        elif gate(work):
            matches = pattern.finditer(work)
        else:
            continue
        found = [(m.start(), m.end(), kind) for m in matches if valid is None or valid(m)]
        if found:
            spans += found
            pieces, at = [], 0
            for start, end, _ in found:
                pieces += (work[at:start], _BLANK * (end - start))
                at = end
            pieces.append(work[at:])
            work = "".join(pieces)
    if not spans:
        return text, _new_counter(Counter)
    spans.sort()
    pieces, at = [], 0
    for start, end, kind in spans:
        pieces += (text[at:start], f"[{kind}]")
        at = end
    pieces.append(text[at:])
    return "".join(pieces), Counter(kind for _, _, kind in spans)


def _fold_case(text: str) -> str:
    """`text` lowercased one character for one, so that spans found in it are spans of `text`.

    The few characters whose lowercase is longer (`İ` -> `i̇`) are left as they are.
    """
    folded = text.lower()
    if len(folded) == len(text):  # lower() never shortens a character, so equal lengths mean one for one
        return folded
    return "".join(low if len(low := char.lower()) == 1 else char for char in text)


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _word_regex(words: Iterable[str]) -> re.Pattern | None:
    """One regex for all `words` (case-folded), written as a trie: `ab|ac` becomes `a(?:b|c)`.

    At each position the longest word wins (a node tries its children before ending). Every branch begins with a
    literal character, which lets `re` skip straight to the characters a word can begin with, and a trie costs
    about the same for ten words as for ten thousand, where a flat alternation tries every word at every position.
    """
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here
    return re.compile(_trie_pattern(trie, "")) if trie else None


def _trie_pattern(node: dict[str, dict], last: str) -> str:
    branches = []
    for char in sorted(node):
        if char:
            lead = re.escape(char)
            # A word's first ASCII letter or digit must not follow another one.
            if not last and _is_ascii_alnum(char):
                lead += f"(?<![0-9a-z]{lead})"
            branches.append(lead + _trie_pattern(node[char], char))
    if "" in node:  # after the longer words, so they win
        branches.append("(?![0-9a-z])" if _is_ascii_alnum(last) else "")
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


class SensitiveWords:
    """Words the admins want masked (`*` per character) or flagged (kept; the case is marked) at ingest.

    Built once from `(word, action)` pairs, action "mask" or "flag"; every bad pair is reported in one
    `ValueError`. Words are compared case-insensitively (`str.lower`, which covers ASCII); a word given with
    both actions is masked and flagged. See the module docstring for word edges and overlaps.
    """

    def __init__(self, entries: Iterable[tuple[str, str]]):
        problems: list[str] = []
        by_action: dict[str, dict[str, str]] = {MASK: {}, FLAG: {}}
        for number, (word, action) in enumerate(entries, start=1):
            if not isinstance(word, str) or not word.strip():
                problems.append(f"entry {number}: the word is empty")
            elif action not in by_action:
                problems.append(
                    f"entry {number} ({word!r}): the action must be 'mask' or 'flag', not {action!r}"
                )
            else:
                by_action[action].setdefault(_fold_case(word), word)
        if problems:
            raise ValueError("; ".join(problems))
        self._flag_words = by_action[FLAG]  # folded -> as configured
        self._mask = _word_regex(by_action[MASK])
        self._flag = _word_regex(by_action[FLAG])

    def __bool__(self) -> bool:
        return self._mask is not None or self._flag is not None

    def apply(self, text: str) -> tuple[str, set[str]]:
        """Return `text` with the mask words masked, and the flag words it holds (as configured)."""
        if self._mask is None and self._flag is None:
            return text, set()
        folded = _fold_case(text)
        flagged = set()
        if self._flag is not None:
            words = self._flag_words
            flagged = {words[found] for found in self._flag.findall(folded)}
        if self._mask is not None:
            pieces, at = [], 0
            for m in self._mask.finditer(folded):
                start, end = m.span()
                pieces += (text[at:start], "*" * (end - start))
                at = end
            if pieces:
                pieces.append(text[at:])
                text = "".join(pieces)
        return text, flagged


@dataclass
class ScrubReport:
    """What `scrub_fields` did to one case: the cleaned fields, the personal data replaced, the flag words."""

    fields: dict[str, str]
    pii: Counter[str] = field(default_factory=Counter)
    flagged: set[str] = field(default_factory=set)


def scrub_fields(fields: Mapping[str, str], words: SensitiveWords | None = None) -> ScrubReport:
    """Scrub personal data, then sensitive words, from every field; counts and flags are summed over fields."""
    report = ScrubReport(fields={})
    for name, value in fields.items():
        value, pii = scrub(value)
        report.pii += pii
        if words:
            value, flagged = words.apply(value)
            report.flagged |= flagged
        report.fields[name] = value
    return report
