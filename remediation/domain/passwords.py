"""Temporary passwords for a reset: strong, random, and never stored or sent anywhere."""

import secrets
import string

# No quotes, backslashes or spaces: they survive every tenant's policy and every JSON layer.
_SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _SYMBOLS)
_ALPHABET = "".join(_CLASSES)
MIN_LENGTH = 16


def generate_password(length: int = 24) -> str:
    """A password with at least one character of each of the four classes.

    Nobody ever learns it: the user must choose a new one at next sign-in (after the
    help desk verifies them), so its only job is to lock the attacker out.
    """
    if length < MIN_LENGTH:
        raise ValueError(f"passwords must have at least {MIN_LENGTH} characters")
    chars = [secrets.choice(char_class) for char_class in _CLASSES]
    chars += [secrets.choice(_ALPHABET) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
