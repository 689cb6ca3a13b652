"""The text units that the word-level analyses count: shortcuts, token masking, thin-region terms.

Most scripts separate words by spaces or punctuation, and a run of word characters (letters,
digits, underscores) is a unit, as ``\\b\\w+\\b`` finds it. Chinese and Japanese are written
without spaces, so a run there is a whole clause, which no other text repeats. As BERT's
BasicTokenizer does (``tokenize_chinese_chars``), each CJK ideograph (the code point ranges of
its ``_is_chinese_char``) is a unit of its own, and so is each Japanese kana; every other run of
word characters is one unit, as before (Korean Hangul keeps its space-separated words). Without
a word segmenter, character bigrams stand in for the words of such text. A unit written in the
full-width or half-width forms (ＡＩ, ２０２４, ｶﾅ) is taken in its NFKC form (ai, 2024, カナ),
as the same word typed without them; its place in the text stays that of the characters found.
"""

from __future__ import annotations

import re
import unicodedata

#: The CJK ideograph ranges of BERT's BasicTokenizer._is_chinese_char, then the kana blocks
#: (hiragana, katakana, katakana extensions, half-width katakana), as regex class ranges.
SINGLE_UNIT_RANGES = (
    r"\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f"
    r"\U0002b740-\U0002b81f\U0002b820-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f"
    r"\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
)
#: One unit: a word character of the ranges above alone (the lookahead leaves out their
#: punctuation and combining marks, which are not word characters), or a run of other word
#: characters. Text without such characters splits exactly as ``\b\w+\b`` splits it.
TOKEN_PATTERN = rf"(?u)(?=\w)[{SINGLE_UNIT_RANGES}]|[^\W{SINGLE_UNIT_RANGES}]+"
UNIT = re.compile(TOKEN_PATTERN)
_SINGLE = re.compile(rf"[{SINGLE_UNIT_RANGES}]")
#: the Halfwidth and Fullwidth Forms block, the only characters whose units NFKC changes here
#: (leaving text without them, all of the dev datasets, as it was)
_WIDTH_FORMS = re.compile(r"[\uff00-\uffef]")


def unit_text(unit: str) -> str:
    """A unit as it is counted: its NFKC form where it holds a full-width or half-width form
    ("ＡＩ" counts as "AI"), else itself."""
    return unicodedata.normalize("NFKC", unit) if _WIDTH_FORMS.search(unit) else unit


def text_units(text: str) -> list[str]:
    """The units of ``text``, lowercased: "iPhone手机很好" gives iphone, 手, 机, 很, 好, and
    "ＡＩ芯片２０２４" gives ai, 芯, 片, 2024 (:func:`unit_text`)."""
    units = UNIT.findall(text.lower())
    if _WIDTH_FORMS.search(text) is None:
        return units
    return [unit_text(unit) for unit in units]


def word_units(text: str) -> list[str]:
    """The units of ``text`` (:func:`text_units`) that scikit-learn's default token pattern
    (``\\b\\w\\w+\\b``) would keep, and the CJK ideographs and kana besides: the units of two
    characters or more, and the units of one that are a CJK ideograph or kana ("手机很好 a
    b2 ok" gives 手, 机, 很, 好, b2, ok). Text without them or full-width forms gives sklearn's
    words."""
    return [unit for unit in text_units(text) if len(unit) > 1 or _SINGLE.match(unit)]


def is_single_unit(unit: str) -> bool:
    """Whether ``unit`` is one CJK ideograph or kana (a unit of one character)."""
    return len(unit) == 1 and _SINGLE.match(unit) is not None
