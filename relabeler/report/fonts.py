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


def class_label(name: str, classes: Sequence[str]) -> str:
    """A class's name in a plot: itself, or "class N" (its place in ``classes``, from 1) where
    the fonts cannot draw it (:func:`class_legend` says which is which)."""
    return drawn(name, f"class {list(classes).index(name) + 1}" if name in classes else "?")


def class_legend(classes: Sequence[str]) -> str:
    """HTML naming the classes the plots show by number; empty when they draw every name."""
    numbered = [f"class {i + 1} = {html.escape(c)}" for i, c in enumerate(classes)
                if not drawable(c)]
    return (f"<p>The plots name the classes their fonts cannot draw by number: "
            f"{'; '.join(numbered)}.</p>" if numbered else "")
