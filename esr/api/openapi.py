"""The OpenAPI 3.1 description of the ESR server; the scenario schema is the model's own."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from esr.core.scenario import scenario_json_schema

__all__ = ["openapi_spec"]


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _text(description: str, kind: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {kind: {"schema": {"type": "string"}}}}


def _page_errors() -> dict[str, Any]:
    """What a page or its data answers when it is not served: the reason as text."""
    return {"401": {"description": "no valid token (or the launch token in the URL)", "content": {
                "text/html": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}}},
            "403": _text("a link token of another run, or a run's link on the list of runs"),
            "404": _text("unknown run")}


def _target_schema(targets: tuple[str, ...], loopback: bool) -> dict[str, Any]:
    """What `target` may be on this server: its registered names, and loopback URLs if allowed."""
    choices: list[dict[str, Any]] = []
    if targets:
        choices.append({"type": "string", "enum": list(targets)})
    if loopback:
        choices.append({"type": "string", "pattern": r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/.*)?$"})
    schema: dict[str, Any] = {"description": "a registered target name or a loopback URL"}
    return schema | (choices[0] if len(choices) == 1 else {"anyOf": choices} if choices else {"type": "string"})


@cache
def openapi_spec(targets: tuple[str, ...] = (), loopback: bool = True) -> dict[str, Any]:
    """The description of this server: `targets` are its registered names, `loopback` whether it
    takes loopback URLs too (so clients, and fuzzers, send targets it accepts)."""
    schema = orjson.loads(orjson.dumps(scenario_json_schema()).replace(b"#/$defs/", b"#/components/schemas/"))
    scenario = schema
    defs = scenario.pop("$defs", {})
    scenario.pop("$schema", None)
    scenario.pop("$id", None)
    run_request = {"allOf": [{"$ref": "#/components/schemas/Scenario"}, {
        "type": "object", "required": ["target"], "properties": {"target": _target_schema(targets, loopback)}}]}
    summary = {
        "type": "object", "required": ["run_id", "state", "verdict"],
        "properties": {
            "run_id": {"type": "string"}, "scenario": {"type": "string"}, "target": {"type": "string"},
            "state": {"type": "string", "enum": ["QUEUED", "RUNNING", "DRAINING", "FINISHED", "ABORTED"]},
            "verdict": {"type": ["string", "null"], "enum": ["PASS", "FAIL", "ERROR", "ABORTED", None]},
            "reason": {"type": "string"}, "assertions": {"type": "array", "items": {"type": "object"}},
            "summary": {"type": "object"}, "completeness": {"type": "object"}, "generator": {"type": "object"},
            "time": {"type": "object"}, "progress": {"type": "object"},
            "faults": {"type": "object", "description": "steady state and each fault's window: metrics during it, "
                                                        "recovery time (docs/faults.md)"},
        },
    }
    run_id = [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    token = {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "a link token of this run, or the observer token (never the launch token)"}
    page = [*run_id, token]
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "HMS-ESR", "version": "0.1.0",
                 "description": "Launch policy-rollout simulations and read their verdicts."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Scenario": scenario, **defs, "RunSummary": summary,
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {
                        "path": {"type": "string"}, "message": {"type": "string"}}}}}},
            },
        },
        "paths": {
            "/run": {"post": {
                "summary": "Launch a run", "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": run_request}}},
                "responses": {
                    "202": {"description": "queued", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["run_id"], "properties": {
                            "run_id": {"type": "string"}, "state": {"type": "string"},
                            "summary_url": {"type": "string"}}}}}},
                    "400": _error("the body is not JSON"), "401": _error("no valid token"),
                    "403": _error("a read-only token, or a target that is not registered"),
                    "422": _error("invalid scenario, or over the server's limits: every field error")}}},
            "/runs": {"get": {
                "summary": "List runs", "security": bearer,
                "responses": {"200": {"description": "runs, newest first", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"runs": {"type": "array", "items": {"type": "object"}}}}}}},
                    "401": _error("no valid token")}}},
            "/run/{run_id}/summary": {"get": {
                "summary": "State, verdict and metrics of a run", "security": bearer, "parameters": run_id,
                "responses": {"200": {"description": "summary", "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/RunSummary"}}}},
                    "401": _error("no valid token"), "404": _error("unknown run")}}},
            "/run/{run_id}/abort": {"post": {
                "summary": "Abort a queued or playing run", "security": bearer, "parameters": run_id,
                "responses": {"200": {"description": "summary after the abort", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RunSummary"}}}},
                    "401": _error("no valid token"), "403": _error("observer token"), "404": _error("unknown run")}}},
            "/run/{run_id}/links": {"get": {
                "summary": "Signed observer and trainee links to the run's dashboard", "security": bearer,
                "parameters": [*run_id, {"name": "ttl_s", "in": "query", "required": False, "schema": {
                    "type": "number", "minimum": 1, "maximum": 30 * 86400}, "description": "lifetime in seconds"}],
                "responses": {"200": {"description": "the links", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["observer", "trainee", "expires_in_s"], "properties": {
                        "observer": {"type": "string"}, "trainee": {"type": "string"},
                        "expires_in_s": {"type": "number"}}}}}},
                    "400": _error("ttl_s out of bounds"), "401": _error("no valid token"),
                    "403": _error("not the launch token"), "404": _text("unknown run")}}},
            "/run/{run_id}/decisions": {"post": {
                "summary": "A trainee's decision on a playing run's timeline", "security": bearer, "parameters": page,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["decision"], "properties": {
                        "decision": {"type": "string", "minLength": 1, "maxLength": 200},
                        "author": {"type": "string"}}}}}},
                "responses": {"201": {"description": "recorded", "content": {"application/json": {"schema": {
                    "type": "object"}}}},
                    "400": _error("not a decision"), "401": _error("no valid token"),
                    "403": _error("an observer's token or another run's link"), "404": _text("unknown run"),
                    "409": _error("the run is not playing here")}}},
            "/": {"get": {"summary": "The list of runs, as a page", "security": bearer,
                          "parameters": [token], "responses": {"200": _text("the page", "text/html"),
                                                               **_page_errors()}}},
            "/dashboard/{run_id}": {"get": {"summary": "The run's live dashboard", "security": bearer,
                                            "parameters": page, "responses": {"200": _text("the page", "text/html"),
                                                                              **_page_errors()}}},
            "/run/{run_id}/timeline": {"get": {
                "summary": "The run's timeline so far (what the dashboard draws)", "security": bearer,
                "parameters": page,
                "responses": {"200": {"description": "timeline", "content": {"application/json": {"schema": {
                    "type": "object"}}}}, **_page_errors()}}},
            "/run/{run_id}/events": {"get": {
                "summary": "Server-sent events: the timeline once a second until the run ends", "security": bearer,
                "parameters": page, "responses": {"200": {"description": "event stream", "content": {
                    "text/event-stream": {"schema": {"type": "object", "required": ["event", "data"], "properties": {
                        "event": {"type": "string", "enum": ["timeline", "end"]},
                        "data": {"type": "string", "description": "the whole timeline as JSON ({} at the end)"}}}}}},
                    **_page_errors()}}},
            "/run/{run_id}/report.html": {"get": {
                "summary": "The run's self-contained report page", "security": bearer, "parameters": page,
                "responses": {"200": _text("the page", "text/html"), **_page_errors()}}},
            "/assets/{name}": {"get": {
                "summary": "The pages' scripts and styles", "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file", "content": {
                    "text/javascript": {"schema": {"type": "string"}}, "text/css": {"schema": {"type": "string"}}}},
                    "404": _text("no such asset")}}},
            "/openapi.json": {"get": {"summary": "This description",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics of every run, labelled sim=\"true\" (docs/server.md)",
                                 "responses": {"200": {"description": "Prometheus text or OpenMetrics format"}}}},
        },
    }
