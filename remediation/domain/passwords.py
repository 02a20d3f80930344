"""Temporary passwords for a reset: strong, random, and never stored or sent anywhere."""

import secrets
import string
import threading
import time
from collections import OrderedDict

# No quotes, backslashes or spaces: they survive every tenant's policy and every JSON layer.
_SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _SYMBOLS)
_ALPHABET = "".join(_CLASSES)
MIN_LENGTH = 16


class RecentSecrets:
    """Secrets this process made or was given, kept in memory only, so that log output can
    mask them exactly; each is forgotten after ``ttl`` seconds (a reset takes seconds)."""

    def __init__(self, limit: int = 1000, ttl: float = 3600.0) -> None:
        self._values: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._limit, self._ttl = limit, ttl

    def add(self, value: str) -> None:
        with self._lock:
            self._values[value] = time.monotonic() + self._ttl
            self._values.move_to_end(value)
            while len(self._values) > self._limit:
                self._values.popitem(last=False)

    def current(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            for value in [v for v, until in self._values.items() if until < now]:
                del self._values[value]
            return list(self._values)


recent_secrets = RecentSecrets()


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
    password = "".join(chars)
    recent_secrets.add(password)
    return password
