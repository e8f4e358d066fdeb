"""Every bad input is a 4xx or exit 2 that names its place, never a 500 or a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_authority import ADMIN, call, server  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

BASE = {"name": "x", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]]}
DEEP_BODY = '{"a":' * 1000 + "{}" + "}" * 1000  # within orjson's limit, beyond ours
DEEP = ('{"name": "deep", "duration_hours": 1, "time_warp": 60, "load_profile": [[0, 1]], "journeys": [{"name": "j", '
        '"steps": [{"name": "s", "request": {"method": "POST", "path": "/x", "json": ' + DEEP_BODY + '}}]}]}')
TERMS = BASE | {"assertions": [" + ".join(["requests"] * 500) + " > 0"]}


async def test_the_server_answers_422_naming_the_field_and_the_limit(server: tuple[str, str, str]) -> None:
    url, run_a, _ = server
    import aiohttp

    async with aiohttp.ClientSession() as session:
        body = DEEP.replace('"journeys"', '"target": "http://127.0.0.1:9", "journeys"')
        async with session.post(f"{url}/run", data=body, headers=ADMIN | {"Content-Type": "application/json"}) as r:
            status, answer = r.status, await r.json()
    assert status == 422, answer
    assert answer["errors"][0]["path"].startswith("journeys[0].steps[0].request.json.a")
    assert "32 levels" in answer["errors"][0]["message"]
    status, answer = await call("POST", f"{url}/run", ADMIN, TERMS | {"target": "http://127.0.0.1:9"})
    assert status == 422 and answer["errors"][0]["path"] == "assertions[0]" and "at most 64" in str(answer)


@pytest.mark.parametrize("body", [{"decision": 5}, {"decision": ["x"]}, {"decision": {"a": 1}},
                                  {"decision": "x", "author": 7}, [1, 2], "text"])
async def test_a_decision_that_is_not_a_string_is_400(server: tuple[str, str, str], body: Any) -> None:
    url, run_a, _ = server
    trainee = (await call("GET", f"{url}/run/{run_a}/links", ADMIN))[1]["trainee"].split("token=")[1]
    status, answer = await call("POST", f"{url}/run/{run_a}/decisions?token={trainee}", None, body)
    assert status == 400, answer


@pytest.mark.parametrize(("text", "where"), [
    (DEEP, "line 1, column"), (json.dumps(TERMS), "assertions[0]"),
])
def test_esr_validate_exits_2_naming_the_place(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "esr.cli", "validate", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and where in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("fields", "path", "limit"), [
    ({"load_profile": [[0, 1e9]]}, "load_profile", "ESR_MAX_RATE"),
    ({"load_profile": [[0, 4000]], "duration_hours": 24, "time_warp": 60}, "load_profile", "ESR_MAX_JOURNEYS"),
    ({"duration_hours": 24 * 365, "time_warp": 1}, "duration_hours", "ESR_MAX_REAL_HOURS"),
    ({"journeys": [{"name": "poller", "steps": [{"name": "p", "request": {"path": "/"},
                                                 "poll": {"every": "10s", "until": "$.done == true",
                                                          "give_up_after": "14h"}}]}]},
     "journeys[0]", "ESR_MAX_REQUESTS_PER_JOURNEY"),
])
async def test_a_scenario_over_the_servers_limits_is_422_naming_the_limit(
        server: tuple[str, str, str], fields: dict[str, Any], path: str, limit: str) -> None:
    url, _, _ = server
    status, answer = await call("POST", f"{url}/run", ADMIN, BASE | fields | {"target": "http://127.0.0.1:9"})
    assert status == 422, answer
    assert "limits" in answer["error"]
    assert any(e["path"] == path and limit in e["message"] for e in answer["errors"]), answer
