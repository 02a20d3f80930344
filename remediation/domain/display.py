"""Text from outside (addresses, rule names, reasons, service messages) made fit to show.

The journal keeps such text as it came; whatever shows it to a person (a Teams card, a Slack
message, an alert comment, an error excerpt) passes it through ``shown`` first: terminal
escape sequences are dropped whole, every other control or invisible character (C0, C1, DEL,
every format character, Unicode category Cf: zero-width, bidirectional overrides, tags
U+E0000-E007F...; line separators; the combining grapheme joiner U+034F, variation selectors,
Hangul fillers) becomes a space,
runs of white space become one, a Markdown link ``[text](url)`` is broken apart (cards
render Markdown: outside text must not become a link with a text it chose), and the result
is cut to a length.
"""

import re
import unicodedata

# ECMA-48: CSI (ESC [ or 8-bit 0x9B) with parameters and a final byte; OSC, DCS, SOS, PM and
# APC strings ended by BEL or ST; what is left of any other ESC sequence.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]?")
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                        "\u2060-\u206f\ufeff\ufff9-\ufffb]")
# Invisible, yet not category Cf: the combining grapheme joiner, Hangul fillers, Mongolian
# free variation selectors, variation selectors (and their supplement), unassigned tag
# code points.
_INVISIBLE_MARKS = re.compile("[\u034f\u115f\u1160\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0"
                              "\U000e0000-\U000e007f\U000e0100-\U000e01ef]")
_SPACES = re.compile(r"\s+")
ELLIPSIS = "…"


def shown(text: str, limit: int) -> str:
    """``text`` on one line, without control characters, at most ``limit`` characters
    (cut with an ellipsis)."""
    text = _ESCAPES.sub("", text)
    text = _INVISIBLE_MARKS.sub(" ", _INVISIBLE.sub(" ", text))
    if not text.isascii():
        text = "".join(" " if unicodedata.category(c) in ("Cf", "Cs") else c for c in text)
    text = _SPACES.sub(" ", text).strip().replace("](", "] (")
    if len(text) > limit:
        text = text[:max(0, limit - 1)].rstrip() + ELLIPSIS
    return text
