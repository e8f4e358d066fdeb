"""Replay redaction is complete: credentials never replayed, bodies redacted, malformed lines
redacted before they are printed or stored."""

from __future__ import annotations

import json

from esr.replay.record import LogRecord
from esr.replay.redact import REDACTED, Redactor


def record(**kw: object) -> LogRecord:
    return LogRecord(**({"time": 0.0, "method": "POST", "target": "/claims", "source": "a.har#1"} | kw))  # type: ignore[arg-type]


CREDENTIALS = (("Authorization", "Bearer eyJhbGciOi.secret"), ("Cookie", "session=abc123"),
               ("Proxy-Authorization", "Basic dXNlcjpwYXNz"), ("X-API-Key", "k-123"), ("Api-Key", "k-456"),
               ("X-Auth-Token", "t-789"))


def test_credential_headers_are_dropped_unless_kept() -> None:
    r = record(headers=(("Accept", "application/json"), *CREDENTIALS))
    assert Redactor.from_options([]).record(r).headers == (("Accept", "application/json"),)
    kept = Redactor.from_options([], keep_credentials=True).record(r)
    assert kept.headers == r.headers


def test_json_and_form_bodies_are_redacted_by_field_name() -> None:
    redactor = Redactor.from_options(["ssn", "email"])
    body = json.dumps({"name": "Jane", "SSN": "123-45-6789", "contact": {"email": "j@x.org", "list": [{"ssn": 1}]}})
    out = redactor.record(record(headers=(("Content-Type", "application/json"),), body=body.encode()))
    assert json.loads(out.body or b"") == {"name": "Jane", "SSN": REDACTED,
                                           "contact": {"email": REDACTED, "list": [{"ssn": REDACTED}]}}
    form = redactor.record(record(headers=(("Content-Type", "application/x-www-form-urlencoded"),),
                                  body=b"name=Jane&ssn=123-45-6789&Email=j%40x.org"))
    assert form.body == b"name=Jane&ssn=REDACTED&Email=REDACTED"
    other = b"\x00\x01binary ssn=123"
    assert redactor.record(record(headers=(("Content-Type", "application/octet-stream"),), body=other)).body == other


def test_malformed_lines_are_redacted_as_text() -> None:
    redactor = Redactor.from_options(["ssn", "/citizens/{id}"])
    line = ('10.0.0.1 - - [garbled "GET /citizens/42/claims?ssn=123-45-6789&x=1 HTTP/1.1" '
            '{"ssn": "987-65-4321"} Authorization: Bearer abc.def.ghi Cookie: session=s3cr3t')
    shown = redactor.text(line)
    for secret in ("123-45-6789", "987-65-4321", "abc.def.ghi", "s3cr3t", "/citizens/42"):
        assert secret not in shown, secret
    assert "/citizens/REDACTED/claims" in shown and "x=1" in shown
