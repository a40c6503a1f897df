"""What counts as saying nothing: text that would show as blank."""

from __future__ import annotations

import unicodedata

# Characters that show as nothing on their own, beyond white space and most format
# characters: the Hangul fillers and the blank Braille pattern (how people post "empty"
# messages where white space is refused), the combining grapheme joiner and the variation
# selectors.
_BLANK = frozenset(
    "\u034f\u115f\u1160\u3164\uffa0\u2800"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
# Format characters that do show: the prepended concatenation marks (Arabic number signs
# and their kin), written before digits but visible alone.
_VISIBLE_FORMAT = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2")


def is_blank(text: str) -> bool:
    """Whether `text` has nothing visible: only white space, invisible format characters
    (zero-width spaces and joiners, byte-order marks, direction marks), variation
    selectors and blank letters."""
    return all(
        char.isspace()
        or char in _BLANK
        or (unicodedata.category(char) == "Cf" and char not in _VISIBLE_FORMAT)
        for char in text
    )
