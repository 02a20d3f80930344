"""Counting what Service Bus counts (UTF-8 bytes, not characters) and showing outside text
without the characters a reader cannot see."""

import unicodedata

import pytest

from remediation.adapters.queue_limits import MAX_MESSAGE_BYTES, MessageTooLarge, check_message
from remediation.domain.display import shown

# -- the 256 KB of a Standard tier message, in bytes --------------------------------------------


def test_properties_count_in_utf8_bytes_not_characters() -> None:
    body = b"x" * (MAX_MESSAGE_BYTES - 30)
    # 10 characters that take 40 bytes: 30 + 40 > the room left
    with pytest.raises(MessageTooLarge):
        check_message(body, message_id="m", session_id="s", properties={"k": "\U0001f600" * 10})
    check_message(body, message_id="m", session_id="s", properties={"k": "x" * 10})


def test_the_ids_count_too() -> None:
    with pytest.raises(MessageTooLarge):
        check_message(b"x" * MAX_MESSAGE_BYTES, message_id="m" * 128, session_id="s" * 128)
    check_message(b"x" * (MAX_MESSAGE_BYTES - 256), message_id="m" * 128, session_id="s" * 128)


# -- invisible characters -----------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [
    "\u034f",  # combining grapheme joiner
    "\U000e0001", "\U000e0041", "\U000e007f",  # tag characters (language tag, tag A, cancel)
    "\ufe0f", "\ufe00", "\U000e0100",  # variation selectors
    "\u180b", "\u3164", "\u115f", "\uffa0",  # Mongolian selector, Hangul fillers
    "\u0600", "\U000110bd", "\U0001d173",  # other format characters (Cf)
])
def test_invisible_characters_do_not_survive(hidden: str) -> None:
    text = shown(f"pay{hidden}pal", 50)

    assert hidden not in text
    assert text == "pay pal"


def test_no_format_character_survives() -> None:
    every_cf = "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf")

    assert shown(f"a{every_cf}b", 50) == "a b"


def test_visible_text_is_kept() -> None:
    assert shown("Zoë Müller — naïve café ✓", 50) == "Zoë Müller — naïve café ✓"
