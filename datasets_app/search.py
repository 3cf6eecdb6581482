"""Full-text search that works for Chinese: text is indexed as words plus overlapping CJK bigrams.

PostgreSQL's parsers do not segment Chinese. Each case stores `search_text`: its words, lowercased, and for every
run of CJK characters its overlapping bigrams plus the run's last character; a generated `tsvector` column
(`simple` config, GIN index, see migration 0002) indexes it. A query is tokenised the same way: a CJK run becomes a
phrase of its bigrams (`<->`), a single CJK character or an English word a prefix match, all ANDed. SQLite
(make run) falls back to substring search over `search_text`.

(Building the bigrams in SQL with regexp_replace was tried: PostgreSQL's regex engine made imports ~30% slower.)
"""

import re
import unicodedata

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_]+", re.UNICODE)
CJK_CLASS = _CJK  # the migration builds the same character class in SQL
_IS_CJK = re.compile(rf"[{_CJK}]")
_SPLIT = re.compile(rf"([{_CJK}]+)|([^\W_]+)", re.UNICODE)
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
MAX_SEARCH_TEXT = 20_000


def _cjk_grams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def _indexed_grams(run: str) -> list[str]:
    """Bigrams plus the last character, so a one-character query (a prefix match) finds every occurrence."""
    return [run] if len(run) == 1 else [*(run[i : i + 2] for i in range(len(run) - 1)), run[-1]]


def tokens(text: str) -> list[str]:
    if text.isascii():  # most English text: NFKC and CJK handling are no-ops
        return _ASCII_TOKEN.findall(text.lower())
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    for cjk, word in _SPLIT.findall(text):
        if cjk:
            out.extend(_indexed_grams(cjk))
        else:
            out.append(word)
    return out


def search_text(*parts: str) -> str:
    """What a case stores for indexing (capped, so a huge case cannot bloat the index)."""
    return " ".join(tokens(" ".join(parts)))[:MAX_SEARCH_TEXT]


def tsquery(query: str) -> str:
    """A to_tsquery('simple', ...) expression, or "" when the query has nothing to search for."""
    text = unicodedata.normalize("NFKC", query).casefold()
    terms = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if _IS_CJK.match(token):
            terms.append(f"{token}:*" if len(token) == 1 else "(" + " <-> ".join(_cjk_grams(token)) + ")")
        else:
            terms.append(f"{token}:*")
    return " & ".join(terms)
