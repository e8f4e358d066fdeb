"""esr.bus.codec: JSON lines for every event type, and decode errors that say where they are."""

from __future__ import annotations

import json

import pytest

from esr.bus.codec import decode, encode
from esr.core.errors import EsrError, RunLogError
from esr.core.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    CounterAdded,
    DecisionRecorded,
    Event,
    FaultEnded,
    FaultStarted,
    JourneyEnded,
    JourneyStarted,
    RequestResult,
    RunAborted,
    RunFinished,
    RunStarted,
    ShardReport,
    SlaDecided,
    VerdictIssued,
    event_type,
)

ENV = {"run_id": "r-1", "sim_time": 3_600.25, "real_time": 1_700_000_060.125}

SAMPLES: list[Event] = [
    RunStarted(**ENV, seq=1, scenario={"name": "s", "load_profile": [[0, 5], [8, 20.5]], "nested": {"a": None}},
               target="http://127.0.0.1:8080", seed=42, sim_start="2024-03-04T00:00:00+00:00", time_warp=60.0,
               drain_warp=240.0, load_end_sim=86_400.0, window_s=60.0, arrivals_planned=12_345,
               scenario_file="examples/s.json"),
    RequestResult(**ENV, seq=2, user=7, journey="claim", step="file", endpoint="POST /claims", status=503,
                  latency_ms=123.456, raw_latency_ms=120.0, bytes=512, error="5xx", faults=("db_down", "latency")),
    RequestResult(**ENV, seq=3, user=8, journey="claim", step="paid", endpoint="GET /claims/{claim_id}", status=200,
                  latency_ms=0.1, raw_latency_ms=0.1, bytes=0),
    JourneyStarted(**ENV, seq=4, user=7, journey="claim", late_ms=12.5),
    JourneyEnded(**ENV, seq=5, user=7, journey="claim", outcome="gave_up", detail="step paid: not met after 37 polls"),
    SlaDecided(**ENV, seq=6, user=7, journey="claim", sla="48h", met=False, opened_sim=100.5),
    CounterAdded(**ENV, seq=7, user=7, name="cloud_cost", value=0.0125),
    RunFinished(**ENV, seq=8, arrivals_planned=10, journeys_started=9, requests_sent=30, late_starts=1,
                journeys_cut=2, requests_abandoned=3),
    RunAborted(**ENV, seq=9, reason="interrupted (Ctrl-C or abort)", arrivals_planned=10, journeys_started=4,
               requests_sent=11, late_starts=0),
    ShardReport(**ENV, seq=11, shard=3, attempt="bots-1a2b:2", first_tick=40, last_tick=95, final=True,
                journeys_started=120, requests_sent=360, late_starts=2, journeys_cut=1, requests_abandoned=1),
    FaultStarted(**ENV, seq=12, fault="db_down@hour12+2h", name="db_down", kind="action", start_sim=43_200.0,
                 end_sim=50_400.0, detail="POST http://127.0.0.1:9701/_esr/runs/r-1/faults/db_down: 200"),
    FaultStarted(**ENV, seq=13, fault="down@hour1", name="down", kind="proxy", start_sim=3_600.0, ok=False,
                 detail="no proxy"),
    FaultEnded(**ENV, seq=14, fault="db_down@hour12+2h", name="db_down", reason="aborted", end_sim=45_000.5,
               ok=False, detail="DELETE ...: connection refused"),
    DecisionRecorded(**ENV, seq=15, author="Jane (trainee)", decision="add_caseworkers(5)", action="add_caseworkers",
                     applied=True, detail="POST http://127.0.0.1:9701/_esr/runs/r-1/actions/add_caseworkers: 200"),
    DecisionRecorded(**ENV, seq=16, author="Jane (trainee)", decision="page on-call"),
    VerdictIssued(**ENV, seq=10, verdict={"verdict": "PASS", "assertions": [{"holds": True, "observed": 0.5}]}),
]


def test_samples_cover_every_event_type() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES.values())
    assert sorted(EVENT_TYPES) == sorted({event_type(e) for e in SAMPLES})


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{event_type(e)}-{e.seq}")
def test_round_trip(event: Event) -> None:
    line = encode(event)
    assert isinstance(line, bytes)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = decode(line)
    assert type(back) is type(event)
    assert back == event
    assert decode(line.decode()) == event  # str lines too
    assert encode(back) == line  # byte for byte


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{event_type(e)}-{e.seq}")
def test_envelope(event: Event) -> None:
    data = json.loads(encode(event))
    assert data["type"] == event_type(event)
    assert data["v"] == SCHEMA_VERSION
    assert data["sim"] is True
    assert (data["run_id"], data["seq"], data["sim_time"], data["real_time"]) == ("r-1", event.seq, 3_600.25,
                                                                                  1_700_000_060.125)


def test_an_event_without_v_or_sim_decodes_with_the_defaults() -> None:
    data = json.loads(encode(SAMPLES[3]))
    del data["v"], data["sim"]
    assert decode(json.dumps(data)) == SAMPLES[3]


COUNTER = {"type": "counter", "run_id": "r", "seq": 1, "sim_time": 0.0, "real_time": 0.0, "user": 1, "name": "c",
           "value": 1.0}
KNOWN = "known event types: run_started, result, journey_started, journey_ended, sla_decided, counter"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"{not json", "not a JSON event"),
        (b"", "not a JSON event"),
        (b'{"type": "result"', "not a JSON event"),
        (json.dumps(COUNTER).encode() + b" trailing", "not a JSON event"),
        (b"[1, 2]", "not a valid event"),
        (b'"result"', "not a valid event"),
        (b'{"type": "nope", "run_id": "r"}', KNOWN),
        (b'{"run_id": "r"}', "missing required field `type`"),
        (json.dumps({**COUNTER, "v": 2}).encode(), f"event schema v2 is newer than this ESR (v{SCHEMA_VERSION})"),
        (b'{"type": "counter", "run_id": "r", "seq": 1}', "missing required field"),
        (json.dumps({**COUNTER, "seq": "1"}).encode(), "`$.seq`"),
        (json.dumps({**COUNTER, "v": "2"}).encode(), "`$.v`"),
        (b'{"type": ["counter"], "run_id": "r"}', "`$.type`"),
    ],
)
def test_decode_errors_name_the_location(line: bytes, words: str) -> None:
    with pytest.raises(RunLogError) as info:
        decode(line, "runs/r-1/events.jsonl:17")
    message = str(info.value)
    assert message.startswith("runs/r-1/events.jsonl:17: ")
    assert words in message
    assert isinstance(info.value, EsrError)


def test_a_newer_event_of_another_shape_says_it_is_newer() -> None:
    # A schema version exists so that a later ESR may change an event's fields. Such a line must
    # be reported as "newer than this ESR; upgrade", not as a malformed event: the version has
    # to be checked before the fields are.
    v2 = {"type": "counter", "v": 2, "run_id": "r", "seq": 1, "sim_time": 0.0, "real_time": 0.0, "user": 1,
          "counter": "c", "amount": 1.0}
    with pytest.raises(RunLogError, match="newer than this ESR"):
        decode(json.dumps(v2), "events.jsonl:3")


def test_every_event_type_has_one_topic_on_both_buses() -> None:
    from esr.bus.embedded import topic_for
    from esr.bus.kafka import TOPICS, KafkaSettings, topic_of
    from esr.core.events import EVENT_TYPES, TOPIC_OF

    assert set(TOPIC_OF) == set(EVENT_TYPES) - {"event_batch"}  # a batch travels on its events' topics
    assert set(TOPIC_OF.values()) <= set(TOPICS)
    kafka = KafkaSettings("127.0.0.1:9092", prefix="p.")
    for event in SAMPLES:
        assert topic_for(event, "p.") == topic_of(event, kafka) == "p." + TOPIC_OF[event_type(event)]
    assert {event_type(e) for e in SAMPLES} == set(TOPIC_OF)


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("outcome", "exploded", "'completed', 'failed', 'gave_up', 'cut'"),
])
def test_an_outcome_outside_its_literal_type_is_refused_by_name(field: str, value: str, allowed: str) -> None:
    line = ('{"type":"journey_ended","run_id":"r","seq":1,"sim_time":0.0,"real_time":0.0,"user":1,'
            f'"journey":"claim","{field}":"{value}"}}')
    with pytest.raises(RunLogError) as info:
        decode(line, "events.jsonl:3")
    assert f"$.{field}" in str(info.value) and str(info.value).startswith("events.jsonl:3: ")


def test_the_literal_types_list_what_the_code_emits() -> None:
    from typing import get_args

    from esr.core.buckets import JOURNEY_OUTCOMES
    from esr.core.events import FaultEndReason, FaultKind, JourneyOutcome
    from esr.core.verdict import EXIT_CODES, VerdictStatus

    assert JOURNEY_OUTCOMES == get_args(JourneyOutcome) == ("completed", "failed", "gave_up", "cut")
    assert get_args(FaultKind) == ("proxy", "action")
    assert set(get_args(FaultEndReason)) == {"scheduled", "run_ended", "aborted", "clock_stopped"}
    assert tuple(EXIT_CODES) == get_args(VerdictStatus)
