"""The replay's pure parts: reordering within a window, the plan, selection, redaction, labels."""

from __future__ import annotations

import heapq
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esr.core.endpoints import endpoint_label
from esr.replay.record import BadLine, LogRecord, Skipped
from esr.replay.redact import REDACTED, Redactor
from esr.replay.schedule import plan_replay, send_offset
from esr.replay.select import Selection, SelectionError
from esr.replay.sources import Tally, reorder


def rec(t: float, method: str = "GET", target: str = "/", status: int | None = 200, n: int = 0) -> LogRecord:
    return LogRecord(time=t, method=method, target=target, source=f"f:{n}", status=status)


# -- reorder ------------------------------------------------------------------------------
def test_lines_shuffled_within_the_window_come_out_sorted() -> None:
    times = [10, 12, 11, 15, 13, 14, 20, 19, 18]
    tally = Tally()
    out = [r.time for r in reorder([rec(t) for t in times], 5.0, tally)]
    assert out == sorted(times)
    assert (tally.parsed, tally.late) == (9, 0)


def test_a_line_older_than_the_window_is_counted_late_and_still_replayed() -> None:
    tally = Tally()
    out = [r.time for r in reorder([rec(t) for t in [100, 101, 200, 300, 50, 301]], 10.0, tally)]
    assert sorted(out) == [50, 100, 101, 200, 300, 301]
    assert tally.late == 1
    assert out.index(50) < out.index(300)  # released at once, not held back


def test_skips_and_bad_lines_are_tallied_by_reason_with_examples() -> None:
    tally = Tally()
    items = [rec(1), Skipped("empty request line", "f:2"), BadLine("bad time: '32/Oct'", "f:3", "x"),
             BadLine("bad time: '99/Oct'", "f:4", "y"), Skipped("empty request line", "f:5")]
    assert [r.time for r in reorder(items, 1.0, tally)] == [1]
    assert tally.skipped == {"empty request line": 2}
    assert tally.bad == {"bad time": 2}
    assert [b.source for b in tally.examples] == ["f:3", "f:4"]


@given(st.lists(st.floats(0, 1000, allow_nan=False), max_size=200), st.floats(0, 50))
def test_reorder_keeps_every_record_and_sorts_within_the_window(times: list[float], window: float) -> None:
    jittered = sorted(times)
    rng = random.Random(len(times))
    shuffled = sorted(jittered, key=lambda t: t + rng.uniform(0, window / 2))  # at most window/2 out of order
    tally = Tally()
    out = [r.time for r in reorder([rec(t) for t in shuffled], window, tally)]
    assert sorted(out) == sorted(times)
    if tally.late == 0:
        assert out == sorted(out)


def _heap_reorder(records: list[LogRecord], window_s: float) -> tuple[list[LogRecord], int]:
    """The reference: a heap of (time, arrival, record), released once older than the window."""
    heap: list[tuple[float, int, LogRecord]] = []
    out: list[LogRecord] = []
    released, late = float("-inf"), 0
    for n, item in enumerate(records):
        if item.time < released:
            late += 1
            out.append(item)
            continue
        heapq.heappush(heap, (item.time, n, item))
        while heap and heap[0][0] <= item.time - window_s:
            released = heap[0][0]
            out.append(heapq.heappop(heap)[2])
    return out + [heapq.heappop(heap)[2] for _ in range(len(heap))], late


@given(st.lists(st.integers(0, 60), max_size=3000), st.sampled_from([0.0, 1.0, 5.0, 60.0]), st.integers(0, 2**32))
def test_reorder_releases_exactly_what_a_heap_would_ties_and_late_ones_included(
        times: list[int], window: float, seed: int) -> None:
    rng = random.Random(seed)
    records = [rec(float(t + i // 20), n=i) for i, t in enumerate(sorted(times))]  # many ties
    records.sort(key=lambda r: r.time + rng.uniform(0, window))  # out of order within the window
    for _ in range(len(records) // 50):  # and a few far behind: late
        records.insert(rng.randrange(len(records)), records.pop(rng.randrange(len(records))))
    tally = Tally()
    expected, late = _heap_reorder(records, window)
    assert [r.source for r in reorder(records, window, tally)] == [r.source for r in expected]
    assert tally.late == late


# -- plan -----------------------------------------------------------------------------------
def test_the_plan_counts_span_real_duration_and_peak_rate() -> None:
    plan = plan_replay([0.0, 60.0, 61.0, 62.0, 120.0, 7200.0], warp=120)
    assert (plan.requests, plan.first, plan.last, plan.span_s) == (6, 0.0, 7200.0, 7200.0)
    assert plan.real_s == 60.0
    assert plan.peak_rate == 4.0  # 0, 60, 61, 62 fall in one real second (120 log seconds)
    assert send_offset(7200.0, 0.0, 120) == 60.0


def test_an_empty_plan_and_a_bad_warp() -> None:
    plan = plan_replay([], warp=2)
    assert (plan.requests, plan.span_s, plan.real_s, plan.peak_rate) == (0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="warp must be positive"):
        plan_replay([1.0], warp=0)


# -- selection ------------------------------------------------------------------------------
def test_only_get_and_head_unless_writes_are_allowed() -> None:
    safe = Selection()
    assert safe.why_not(rec(1, "GET")) is None and safe.why_not(rec(1, "HEAD")) is None
    assert safe.why_not(rec(1, "POST")) == "write method (replay with --allow-writes to send it)"
    assert Selection(allow_writes=True).why_not(rec(1, "DELETE")) is None


def test_time_window_method_path_and_status_filters() -> None:
    s = Selection(start=10, end=20, methods=frozenset({"GET"}), paths=("/claims/*",), statuses=("5xx", "404"))
    assert s.why_not(rec(9, target="/claims/1", status=500)) == "before --from"
    assert s.why_not(rec(20, target="/claims/1", status=500)) == "after --to"
    assert s.why_not(rec(10, "HEAD", "/claims/1", 500)) == "method not selected"
    assert s.why_not(rec(10, target="/users/1", status=500)) == "path not selected"
    assert s.why_not(rec(10, target="/claims/1?x=1", status=200)) == "status not selected"
    assert s.why_not(rec(10, target="/claims/1?x=1", status=503)) is None
    assert s.why_not(rec(10, target="/claims/1", status=404)) is None
    assert s.why_not(rec(10, target="/claims/1", status=None)) == "status not selected"


def test_a_bad_status_filter_says_what_was_expected() -> None:
    with pytest.raises(SelectionError, match="--status '5x'.*such as 200 or a class such as 5xx"):
        Selection(statuses=("5x",))


def test_endpoint_labels_group_ids() -> None:
    assert endpoint_label("GET", "/claims/8812?x=1") == "GET /claims/{id}"
    assert endpoint_label("GET", "/claims/3f2504e0-4f89-11d3-9a0c-0305e82c3301/docs") == "GET /claims/{id}/docs"
    assert endpoint_label("POST", "/claims") == "POST /claims"
    assert endpoint_label("GET", "/") == "GET /"


# -- redaction ------------------------------------------------------------------------------
def test_named_query_parameters_path_segments_and_headers_are_redacted() -> None:
    r = Redactor.from_options(["ssn", "Email"])
    assert r.target("/find?ssn=123-45-6789&q=x&SSN=9") == f"/find?ssn={REDACTED}&q=x&SSN={REDACTED}"
    assert r.target("/by/email/jane%40example.org/claims") == f"/by/email/{REDACTED}/claims"
    record = LogRecord(1.0, "GET", "/a?email=j@x.org", "f:1", headers=(("Email", "j@x.org"), ("Accept", "*/*")))
    out = r.record(record)
    assert out.target == f"/a?email={REDACTED}"
    assert out.headers == (("Email", REDACTED), ("Accept", "*/*"))


def test_path_templates_redact_the_segments_in_braces() -> None:
    r = Redactor.from_options(["/citizens/{ssn}/claims/{claim}"])
    assert r.target("/api/citizens/123-45-6789/claims/77?x=1") == f"/api/citizens/{REDACTED}/claims/{REDACTED}?x=1"
    assert r.target("/citizens/1/other") == "/citizens/1/other"


def test_no_redaction_leaves_records_alone() -> None:
    record = rec(1, target="/a?ssn=1")
    assert Redactor.from_options([]).record(record) is record


@pytest.mark.parametrize("selection", [Selection(), Selection(allow_writes=True), Selection(statuses=("5xx",)),
                                       Selection(methods=frozenset({"POST"}), allow_writes=True),
                                       Selection(start=50.0), Selection(paths=("/a*",))])
def test_the_quick_checker_answers_as_why_not(selection: Selection) -> None:
    check = selection.checker()
    for record in (rec(10, "GET", "/a"), rec(60, "POST", "/b", 500), rec(70, "HEAD", "/a", None),
                   rec(80, "DELETE", "/a", 204)):
        assert check(record) == selection.why_not(record)


def test_the_peak_of_a_log_in_one_real_second_is_counted_in_bounded_memory() -> None:
    """At warp 1e9 a year of log is one real second: past EXACT_PEAK requests the plan counts
    the busiest second in thousandths of a second instead of holding every time."""
    import tracemalloc

    from esr.replay.schedule import EXACT_PEAK

    n = 5 * EXACT_PEAK
    times = (1_700_000_000.0 + k * 10.0 for k in range(n))  # 3e6 s of log: all in one real second at 1e9
    tracemalloc.start()
    plan = plan_replay(times, warp=1e9)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (plan.requests, plan.peak_rate) == (n, float(n))
    assert peak_bytes < 8_000_000  # the exact window up to 100,000 times, then a few slots (500,000 held: 20 MB)
    assert plan_replay([0.0, 60.0, 61.0, 62.0, 120.0, 7200.0], warp=120).peak_rate == 4.0  # exact while small
    # beyond EXACT_PEAK, still a sliding second: 200,000 requests in the first real second, then 1 a second
    spread = [k * 1e-3 for k in range(2 * EXACT_PEAK)] + [1000.0 + k for k in range(10)]
    assert plan_replay(spread, warp=200.0).peak_rate == float(2 * EXACT_PEAK)
