"""Labels the report's plots can draw: a token or class name the plots' fonts lack glyphs for
(CJK without a CJK font) would be a row of empty boxes, so the plots name it by a number and
the page says what each number stands for."""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence


@functools.cache
def _drawable_chars() -> frozenset[int]:
    """The code points the plots' fonts can draw: those of every font of matplotlib's
    ``font.family`` list (its fallbacks) that is installed."""
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    chars: set[int] = set()
    for family in matplotlib.rcParams["font.family"]:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=[family]),
                                         fallback_to_default=family == "sans-serif")
        except ValueError:  # not installed
            continue
        chars |= set(FT2Font(path).get_charmap())
    return frozenset(chars)


def drawable(text: str) -> bool:
    """Whether the plots' fonts draw every character of ``text`` (spaces aside)."""
    chars = _drawable_chars()
    return all(ord(c) in chars for c in text if not c.isspace())


def drawn(text: str, stand_in: str) -> str:
    """``text`` where the plots' fonts draw it, else ``stand_in``."""
    return text if drawable(text) else stand_in


#: the most characters of a class name a plot draws; a longer one is cut and numbered
LONGEST_DRAWN = 30


def class_label(name: str, classes: Sequence[str]) -> str:
    """A class's name in a plot: itself; "class N" (its place in ``classes``, from 1) where
    the fonts cannot draw it; where it is longer than :data:`LONGEST_DRAWN` characters, its
    start, "…" and "(class N)", so that two names that begin alike stay apart
    (:func:`class_legend` says which is which)."""
    number = f"class {list(classes).index(name) + 1}" if name in classes else None
    if not drawable(name):
        return number or "?"
    if len(name) <= LONGEST_DRAWN:
        return name
    ellipsis = drawn("\u2026", "...")
    suffix = f" ({number})" if number else ""
    return name[:LONGEST_DRAWN - len(ellipsis) - len(suffix)] + ellipsis + suffix


def class_legend(classes: Sequence[str]) -> str:
    """HTML naming the classes the plots show by number; empty when they draw every name in
    full."""
    numbered = [f"class {i + 1} = {html.escape(c)}" for i, c in enumerate(classes)
                if not drawable(c)]
    cut = [f"class {i + 1} = {html.escape(c)}" for i, c in enumerate(classes)
           if drawable(c) and len(c) > LONGEST_DRAWN]
    parts = ([f"The plots name the classes their fonts cannot draw by number: "
              f"{'; '.join(numbered)}."] if numbered else []) + \
        ([f"The plots cut the class names longer than {LONGEST_DRAWN} characters and name "
          f"them by number: {'; '.join(cut)}."] if cut else [])
    return f"<p>{' '.join(parts)}</p>" if parts else ""
