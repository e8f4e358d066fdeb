"""One filing per `Idempotency-Key`: the first answer, remembered, for a request sent again.

The sample system follows draft-ietf-httpapi-idempotency-key-header and Stripe: a request
with a key seen before gets the first answer again (same status and body, with
`Idempotent-Replayed: true`); the same key with another body is a client bug (422); a
request without a key is handled as always. Only answers that did something (the claims
service remembers 201 and 202) are kept, so a request refused while the database was down
can be sent again with its key and filed then.

Memory is bounded: a store keeps at most `limit` keys (one store per run), forgetting the
oldest first. ESR re-sends a request seconds after its first send (a bot shard taken over),
far inside that window.

    BadKey      ValueError: the header is empty, too long or not printable ASCII (400)
    KeyReused   ValueError: the key came with another request body before (422)
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import orjson

__all__ = ["MAX_KEY_LENGTH", "BadKey", "IdempotencyStore", "KeyReused", "Remembered", "fingerprint", "read_key"]

MAX_KEY_LENGTH = 255  # as Stripe's
HEADER = "Idempotency-Key"


class BadKey(ValueError):
    """The header cannot be a key; the message names it and says what a key is."""


class KeyReused(ValueError):
    """The key was used before with another request."""


class Remembered(NamedTuple):
    status: int
    body: bytes


def read_key(header: str) -> str:
    """The key in an `Idempotency-Key` header: bare (as Stripe's clients send it) or a
    structured-field string in double quotes (as the IETF draft writes it)."""
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key:
        raise BadKey(f"{HEADER} is empty: send 1 to {MAX_KEY_LENGTH} printable characters, or no header")
    if len(key) > MAX_KEY_LENGTH:
        raise BadKey(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters, not {len(key)}")
    if not all(" " <= c <= "~" for c in key):
        raise BadKey(f"{HEADER} must be printable ASCII characters; got {key!r}")
    return key


def fingerprint(body: object) -> bytes:
    """What makes two requests the same request: their JSON, whatever its key order or spacing."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()[:16]


class IdempotencyStore:
    """The answers given per key, at most `limit` of them (the oldest forgotten first)."""

    __slots__ = ("limit", "_answers")

    def __init__(self, limit: int = 100_000) -> None:
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        self.limit = limit
        self._answers: dict[str, tuple[bytes, Remembered]] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def lookup(self, key: str, digest: bytes) -> Remembered | None:
        """The first answer to `key`, None if there was none; KeyReused if it came with another body."""
        found = self._answers.get(key)
        if found is None:
            return None
        if found[0] != digest:
            raise KeyReused(f"{HEADER} {key!r} was sent before with another request body: a key names one "
                            "request; send this one with a key of its own")
        return found[1]

    def remember(self, key: str, digest: bytes, status: int, body: bytes) -> None:
        answers = self._answers
        # a copy of its own: orjson's output keeps its whole buffer (4 KiB) alive
        answers[key] = (digest, Remembered(status, bytes(memoryview(body))))
        while len(answers) > self.limit:
            del answers[next(iter(answers))]
