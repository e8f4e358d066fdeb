"""A replay's metric window: 60 s, widened just enough that the log's span makes at most
2,000 windows; a window the user asks for is used as it is or refused, never widened."""

from __future__ import annotations

import pytest

from esr.core.errors import AssertionSyntaxError, ScenarioError
from esr.core.scenario import Scenario
from esr.replay.player import REPLAY_MAX_WINDOWS, ReplayPlanError, metric_window, replay_scenario
from esr.replay.schedule import ReplayPlan

DAY = 86_400
YEAR = 366 * DAY


def plan(span_s: float, requests: int = 10) -> ReplayPlan:
    return ReplayPlan(requests, 1_700_000_000.0, 1_700_000_000.0 + span_s, 1e9, 1.0)


@pytest.mark.parametrize(("span_s", "window_s", "windows"), [
    (0, 60, 1),
    (3600, 60, 61),
    (DAY, 60, 1_441),  # a day keeps 1-minute windows
    (2 * DAY, 120, 1_441),
    (7 * DAY, 360, 1_681),
    (YEAR, 21_600, 1_465),  # a year: 6 h
    (2 * 365 * DAY, 43_200, 1_461),
    (3 * YEAR, DAY, 1_099),
    (10 * YEAR, 2 * DAY, 1_831),
    (1000 * YEAR, 184 * DAY, 1_990),
])
def test_the_default_window_widens_to_keep_at_most_the_maximum(span_s: float, window_s: float, windows: int) -> None:
    got = metric_window(span_s)
    assert (got.window_s, got.windows) == (window_s, windows)
    assert got.windows <= REPLAY_MAX_WINDOWS
    assert got.widened is (window_s > 60)
    assert got.to_dict()["chosen"] == ("widened" if window_s > 60 else "default")


def test_a_window_asked_for_is_used_or_refused_naming_what_fits() -> None:
    assert metric_window(YEAR, 43_200).window_s == 43_200  # wider than needed: as asked
    assert metric_window(DAY, 300).to_dict()["chosen"] == "asked"
    with pytest.raises(ReplayPlanError) as info:
        metric_window(YEAR, 3600)
    assert str(info.value) == ("--window 1h makes 8,785 metric windows over the log's span of 366.0 days; a replay "
                               "keeps at most 2,000: give --window 6h or more, or replay a slice with --slice "
                               "START/END")
    with pytest.raises(ReplayPlanError, match="^the window of s.json 1min makes"):
        metric_window(YEAR, 60, "the window of s.json")


def test_the_replays_scenario_carries_the_window_and_the_windowed_endpoints() -> None:
    s = replay_scenario(plan(YEAR), ["error_rate < 0.1 in every 1d", 'requests > 0 for endpoint "GET /a"',
                                     'latency_p95_ms < 300 for endpoint "GET /b" in every 12h',
                                     'errors < 3 for endpoint "GET /c" during hour 0..24'], top_endpoints=10)
    assert s.window == 21_600
    assert s.windowed_endpoints == ["GET /b", "GET /c"]
    assert replay_scenario(plan(DAY), ["error_rate < 0.1"], top_endpoints=10).windowed_endpoints is None
    assert replay_scenario(plan(DAY), [], top_endpoints=10).window == 60
    assert replay_scenario(plan(DAY), [], window=900).window == 900


def test_a_scope_finer_than_a_widened_window_is_refused_saying_why() -> None:
    with pytest.raises(ReplayPlanError) as info:
        replay_scenario(plan(YEAR), ["error_rate < 0.1 in every 1h"], top_endpoints=10)
    assert "--assert 'error_rate < 0.1 in every 1h'" in str(info.value)
    assert "multiple of the metric window (21600s)" in str(info.value) and "widened to 6h" in str(info.value)
    with pytest.raises(ReplayPlanError, match="do not fall on the metric window's boundaries"):
        replay_scenario(plan(YEAR), ["error_rate < 0.1 during hour 8..18"])
    with pytest.raises(ReplayPlanError, match="^--window: window must divide one hour evenly"):
        replay_scenario(plan(DAY), [], window=420)


def test_only_a_replays_scenario_takes_windows_past_an_hour() -> None:
    base = {"name": "x", "duration_hours": 1, "time_warp": 1, "load_profile": [[0, 1]]}
    with pytest.raises(ScenarioError, match="window must divide one hour"):
        Scenario.from_dict({**base, "window": 7200})
    assert Scenario.from_dict({**base, "derived_from": "log", "window": 7200}).window == 7200
    assert Scenario.from_dict({**base, "derived_from": "log", "window": 3 * DAY}).window == 3 * DAY
    with pytest.raises(ScenarioError, match="window must divide one hour"):
        Scenario.from_dict({**base, "derived_from": "log", "window": 5 * 3600})  # 5 h does not divide a day


def test_hours_must_fall_on_a_long_windows_boundaries() -> None:
    from esr.core.assertions import parse_assertion

    assert parse_assertion("error_rate < 0.1 during hour 6..18", window_s=21_600).from_hour == 6
    with pytest.raises(AssertionSyntaxError, match="multiples of 6"):
        parse_assertion("error_rate < 0.1 during hour 8..18", window_s=21_600)
    assert parse_assertion("error_rate < 0.1 during hour 8.5..9", window_s=60).to_hour == 9  # as before


def test_the_sending_options_travel_in_the_replays_scenario() -> None:
    """`--max-in-flight` and `--timeout` reach the Kafka runtime's bot workers in the scenario."""
    s = replay_scenario(plan(DAY), [], max_in_flight=8, request_timeout=2.5)
    assert (s.max_in_flight, s.request_timeout) == (8, 2.5)
    assert replay_scenario(plan(DAY), []).max_in_flight == 10_000  # the scenario's default when not given
