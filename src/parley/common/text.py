"""What counts as saying nothing: text that would show as blank."""

from __future__ import annotations

import unicodedata

# Letters that render as nothing: the Hangul fillers and the blank Braille pattern, which
# is how people post "empty" messages where white space is refused.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_blank(text: str) -> bool:
    """Whether `text` has nothing visible: only white space, invisible format characters
    (zero-width spaces and joiners, byte-order marks, direction marks) and blank letters."""
    return all(
        char.isspace() or char in _BLANK_LETTERS or unicodedata.category(char) == "Cf"
        for char in text
    )
