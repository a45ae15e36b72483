"""Text from the network, made safe to print on a terminal or in a one-line log.

A note's text, an error's details or a name the server sends are written by
someone else: printed raw, an ESC sequence would clear the reader's screen or
set their window title, a C1 control or a bidi override would reorder what
they see, and a newline would start a line that imitates a note in the log
that chatctl and the tests parse. `visible` writes every such character as an
escape (`\\x1b`, `\\n`, `\\u202e`) that shows what was sent without acting on it;
everything else, emoji and all scripts included, is left as it is.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKING = frozenset(("Cc", "Zl", "Zp", "Cs"))
"""Controls (C0, DEL, C1), line and paragraph separators, lone surrogates."""


def visible(text: str) -> str:
    """The text with every control, line break and bidi override written as an escape."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if char in _BIDI_CONTROLS or unicodedata.category(char) in _LINE_BREAKING:
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char
