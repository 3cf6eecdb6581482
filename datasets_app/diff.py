"""Side-by-side diff of a bad output and its correction: word level for Latin text, character level for CJK.

Both texts are cut into tokens (runs of letters/digits, single CJK characters, runs of whitespace, single
punctuation marks), compared with difflib.SequenceMatcher, and returned as two HTML strings in which every token is
escaped and the changed runs are wrapped in <del> (left) and <ins> (right).

SequenceMatcher is quadratic at worst, so long texts are first matched line by line and only the changed blocks
of lines are compared token by token (a block still too big is shown as replaced as a whole).
"""

import re
from difflib import SequenceMatcher

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from datasets_app.search import _CJK

_TOKEN = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+|\s+|.", re.UNICODE | re.DOTALL)
TOKEN_BUDGET = 1_000_000  # len(a) * len(b) tokens compared directly


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def diff_html(a: str, b: str) -> tuple[SafeString, SafeString]:
    """(left, right): `a` with removed runs in <del>, `b` with added runs in <ins>; all text escaped."""
    left: list[str] = []
    right: list[str] = []
    ta, tb = tokenize(a or ""), tokenize(b or "")
    if len(ta) * len(tb) <= TOKEN_BUDGET:
        _diff_tokens(ta, tb, left, right)
    else:
        _diff_lines((a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True), left, right)
    return mark_safe("".join(left)), mark_safe("".join(right))  # every token is escaped in _emit


def _diff_lines(la: list[str], lb: list[str], left: list[str], right: list[str]) -> None:
    for op, i1, i2, j1, j2 in SequenceMatcher(None, la, lb, autojunk=False).get_opcodes():
        ta, tb = tokenize("".join(la[i1:i2])), tokenize("".join(lb[j1:j2]))
        if op == "equal":
            _emit(ta, tb, left, right, changed=False)
        elif len(ta) * len(tb) <= TOKEN_BUDGET:
            _diff_tokens(ta, tb, left, right)
        else:
            _emit(ta, tb, left, right, changed=True)


def _diff_tokens(ta: list[str], tb: list[str], left: list[str], right: list[str]) -> None:
    for op, i1, i2, j1, j2 in SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        _emit(ta[i1:i2], tb[j1:j2], left, right, changed=op != "equal")


def _emit(ta: list[str], tb: list[str], left: list[str], right: list[str], *, changed: bool) -> None:
    old, new = "".join(escape(t) for t in ta), "".join(escape(t) for t in tb)
    if not changed:
        left.append(old)
        right.append(new)
        return
    if old:
        left.append(f"<del>{old}</del>")
    if new:
        right.append(f"<ins>{new}</ins>")
