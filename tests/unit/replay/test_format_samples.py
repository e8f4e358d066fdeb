"""Each reader's SAMPLE (what `esr replay --list-formats` prints) is detected as that format,
in detection order, and reads into a request."""

from __future__ import annotations

from datetime import UTC

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



# What each JSON preset's sample (listed under json by `--list-formats`) says: UTC time, method, target, status.
PRESET_SAMPLES = {
    "caddy": ("2024-03-04T09:00:01.524102+00:00", "GET", "/claims?id=3", 200),
    "nginx": ("2024-03-04T09:00:01.123000+00:00", "GET", "/claims/42?expand=1", 200),
    "esr": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims?id=3", 200),
    "traefik": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims?id=3", 200),
    "envoy": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims/42?expand=1", 200),
    "cloudflare": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims?id=3", 200),
    "ecs": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims?id=3", 200),
    "gcp-lb": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims?id=3", 200),
    "fastly": ("2024-03-04T09:00:01+00:00", "GET", "/claims?id=3", 200),
    "azure-frontdoor": ("2024-03-04T09:00:01.250000+00:00", "GET", "/claims?id=3", 200),
}


def test_every_json_preset_has_a_sample() -> None:
    from esr.replay.formats import jsonl

    assert list(jsonl.PRESET_SAMPLES) == list(jsonl.PRESETS) == list(PRESET_SAMPLES)


@pytest.mark.parametrize("preset", list(PRESET_SAMPLES))
def test_a_json_presets_sample_is_json_and_reads_into_its_request(preset: str) -> None:
    from datetime import datetime

    from esr.replay.formats import jsonl

    product, line = jsonl.PRESET_SAMPLES[preset]
    assert product and "\n" not in line
    assert next(m.NAME for m in KNOWN.values() if m.sniff([line])) == "json"
    for options in ({"preset": preset}, {}):  # named, and picked from the line itself
        (record,) = jsonl.parse([(1, line)], "sample", **options)
        assert type(record) is LogRecord, record
        when = datetime.fromtimestamp(record.time, UTC).isoformat()
        assert (when, record.method, record.target, record.status) == PRESET_SAMPLES[preset]
