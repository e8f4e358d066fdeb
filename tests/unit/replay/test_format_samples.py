"""Each reader's SAMPLE (what `esr replay --list-formats` prints) is detected as that format,
in detection order, and reads into a request."""

from __future__ import annotations

import pytest

from esr.replay.record import LogRecord
from esr.replay.sources import readers

KNOWN = readers()


@pytest.mark.parametrize("name", list(KNOWN))
def test_a_formats_sample_is_detected_as_it_and_reads_into_a_request(name: str) -> None:
    module = KNOWN[name]
    head = list(module.SAMPLE)
    assert next(m.NAME for m in KNOWN.values() if m.sniff(head)) == name
    records = [item for item in module.parse(enumerate(head, 1), "sample") if type(item) is LogRecord]
    assert len(records) == 1 and records[0].target.startswith("/") and records[0].method == "GET"

