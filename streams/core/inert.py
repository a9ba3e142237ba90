"""Producer-controlled text made inert for an operator's terminal. Pure.

A dead letter's key, value and headers are whatever a producer sent: written raw, an escape
sequence could clear the screen, rewrite earlier lines (``\\r``), set the window title or
hide text (bidi overrides reorder what is shown). Every such character is written as a
visible escape instead; printable text, including non-ASCII letters, is left as it is.
"""

from __future__ import annotations

import unicodedata

#: Control (C0, DEL, C1), format (bidi overrides and isolates, zero-width characters, tags),
#: line and paragraph separators, and lone surrogates (which cannot even be encoded).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def inert(text: str) -> str:
    """``text`` with every control or invisible formatting character escaped (``\\x1b``,
    ``\\r``, ``\\u202e``…). Rich markup is not touched here: print the result as plain text
    (``rich.text.Text``, or ``markup=False``), never as markup."""
    if text.isprintable():  # the common case, in C
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
