"""`esr replay` on JSON logs of any layout: `--preset NAME`, `--field-map`, the time unit stated in
the plan, and a clear refusal (exit 2, no traceback) for each kind of bad option."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from recording_server import Recorder

pytestmark = pytest.mark.integration

T0 = 1709542801.25  # 2024-03-04T09:00:01.25Z
NOWHERE = "http://127.0.0.1:9"  # loopback, never sent to by a dry run


async def esr(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "esr.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def traefik(dt: float, method: str, path: str, status: int = 200) -> str:
    start = datetime.fromtimestamp(T0 + dt, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"ClientHost": "203.0.113.7", "DownstreamContentSize": 512, "DownstreamStatus": status,
                       "Duration": 4512345, "RequestHost": "claims.example.com", "RequestMethod": method,
                       "RequestPath": path, "RequestProtocol": "HTTP/1.1", "StartUTC": start,
                       "entryPointName": "websecure", "level": "info", "msg": "", "time": start[:19] + "Z"})


def cloudflare(dt: float, method: str, uri: str) -> str:
    return json.dumps({"ClientIP": "203.0.113.7", "ClientRequestHost": "claims.example.com",
                       "ClientRequestMethod": method, "ClientRequestURI": uri, "EdgeResponseBytes": 1024,
                       "EdgeResponseStatus": 200, "EdgeStartTimestamp": int((T0 + dt) * 1000) * 1_000_000})


async def test_a_traefik_log_is_planned_with_its_preset_and_its_time_kind(tmp_path: Path) -> None:
    log = tmp_path / "traefik.log"
    log.write_text("\n".join([traefik(0, "GET", "/claims?id=3"), traefik(30, "HEAD", "/claims/1"),
                              traefik(60, "GET", "/status")]) + "\n")
    code, out, err = await esr("replay", str(log), "--preset", "traefik", "--target", NOWHERE, "--warp", "60",
                               "--dry-run")
    assert code == 0, err
    assert "requests to send: 3\n" in out
    assert "log time: 2024-03-04T09:00:01.250000+00:00 .. 2024-03-04T09:01:01.250000+00:00 (60 s)" in out
    assert "timestamps: RFC 3339\n" in out
    assert "json preset: traefik\n" in out

    code, out, err = await esr("replay", str(log), "--preset", "traefik", "--target", NOWHERE, "--warp", "60",
                               "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)["plan"]
    assert (plan["requests"], plan["first"], plan["last"]) == (3, T0, T0 + 60)
    assert (plan["timestamps"], plan["json_preset"]) == ("RFC 3339", "traefik")


async def test_any_json_layout_is_read_with_a_field_map(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("\n".join([
        json.dumps({"ts": 1709542801250, "req": {"verb": "GET", "uri": "/claims?id=3"}, "code": 200}),
        json.dumps({"ts": 1709542802250, "req": {"verb": "GET"}, "code": 200}),  # no uri
        json.dumps({"ts": 1709542803250, "req": {"verb": "POST", "uri": "/claims"}, "code": 201}),
    ]) + "\n")
    code, out, err = await esr("replay", str(log), "--field-map", "time=ts,method=req.verb,path=req.uri,status=code",
                               "--target", NOWHERE, "--warp", "10", "--dry-run", "--allow-writes")
    assert code == 0, err
    assert "requests to send: 2\n" in out
    assert "log time: 2024-03-04T09:00:01.250000+00:00 .. 2024-03-04T09:00:03.250000+00:00 (2 s)" in out
    assert "timestamps: epoch milliseconds\n" in out
    assert "json preset: none (--field-map)\n" in out
    assert (f"{log}:2: no path at 'req.uri' in this object; the field map reads it from there: pick another "
            "--preset, or name the field with --field-map path=FIELD") in out


async def test_the_field_map_overrides_the_presets_entries(tmp_path: Path) -> None:
    log = tmp_path / "traefik.log"
    line = json.loads(traefik(0, "GET", "/rewritten"))
    line["RequestURI"] = "/original?id=3"
    log.write_text(json.dumps(line) + "\n")
    code, out, err = await esr("replay", str(log), "--preset", "traefik", "--field-map", "path=RequestURI",
                               "--target", NOWHERE, "--warp", "1", "--dry-run", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["plan"]["requests"] == 1 and result["read"]["parsed"] == 1
    assert result["plan"]["json_preset"] == "traefik (with --field-map)"


async def test_mixed_epoch_units_are_refused_at_their_line(tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    log.write_text('{"ts":1709542801250,"m":"GET","p":"/a"}\n{"ts":1709542802,"m":"GET","p":"/b"}\n')
    code, out, err = await esr("replay", str(log), "--field-map", "time=ts,method=m,path=p", "--target", NOWHERE,
                               "--warp", "1", "--dry-run")
    assert code == 0, err
    assert "requests to send: 1\n" in out and "1 malformed" in out
    assert (f"{log}:2: time at 'ts' mixes epoch units: epoch seconds here (got 1709542802) but epoch "
            f"milliseconds at {log}:1; expected one unit per file") in out


async def test_a_cloudflare_log_is_replayed_at_its_logged_times(recorder: tuple[str, Recorder], tmp_path: Path) -> None:
    url, rec = recorder
    log = tmp_path / "cf.json"
    log.write_text("\n".join([cloudflare(0, "GET", "/claims?id=3"), cloudflare(1.5, "GET", "/claims/7")]) + "\n")
    code, out, err = await esr("replay", str(log), "--preset", "cloudflare", "--target", url, "--warp", "10",
                               "--json", "--assert", "requests == 2")
    assert code == 0, err
    assert [f"{s['method']} {s['target']}" for s in rec.seen] == ["GET /claims?id=3", "GET /claims/7"]
    assert [s["sim_time"] for s in rec.seen] == ["2024-03-04T09:00:01.250+00:00", "2024-03-04T09:00:02.750+00:00"]
    assert json.loads(out)["replay"]["plan"]["timestamps"] == "epoch nanoseconds"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--preset", "apache"], "esr: error: unknown --preset 'apache'; known presets: caddy, nginx, esr, traefik, "
                                 "envoy, cloudflare, ecs, gcp-lb, fastly, azure-frontdoor\n"),
        (["--field-map", "time=ts,method=verb"], "esr: error: --field-map needs path (the request path, with or "
                                                 "without its query, or a full URL); give time, method and path, "
                                                 "e.g. time=ts,method=verb,path=uri, or start from a --preset\n"),
        (["--field-map", "time=ts,method=verb,path=uri,when=x"], "esr: error: --field-map: unknown key 'when' in "
                                                                 "'when=x'; expected time, method, path, query, "
                                                                 "status, duration, duration_unit, bytes, client, "
                                                                 "host or headers\n"),
        (["--field-map", "time=ts;method=verb"], "esr: error: --field-map: 'time=ts;method=verb' is not "
                                                 "KEY=FIELD; expected e.g. time=ts,method=verb,path=uri\n"),
        (["--preset", "caddy", "--format", "clf"], "esr: error: --preset and --field-map read JSON lines; "
                                                   "they cannot be used with --format clf\n"),
    ],
)
async def test_bad_json_options_are_refused_with_what_was_expected(options: list[str], message: str,
                                                                   tmp_path: Path) -> None:
    log = tmp_path / "any.log"
    log.write_text(traefik(0, "GET", "/") + "\n")
    code, out, err = await esr("replay", str(log), *options, "--target", NOWHERE, "--warp", "1", "--dry-run")
    assert (code, out, err) == (2, "", message)


async def test_list_formats_shows_each_json_preset_with_its_sample() -> None:
    from esr.replay.formats.jsonl import PRESET_SAMPLES

    code, out, err = await esr("replay", "--list-formats")
    assert code == 0, err
    for name, (product, sample) in PRESET_SAMPLES.items():
        assert f"\n  --preset {name}: {product}\n      {sample}\n" in out


async def test_help_teaches_the_json_options_with_an_example_each() -> None:
    code, out, err = await esr("replay", "--help")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "--preset NAME" in flat and "e.g. --preset traefik" in flat
    assert "--field-map MAP" in flat and "e.g. --field-map time=ts,method=req.verb,path=req.uri" in flat
