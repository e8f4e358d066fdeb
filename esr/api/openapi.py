"""The OpenAPI 3.1 description of the ESR server; the scenario schema is the model's own."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from ..scenario import scenario_json_schema

__all__ = ["openapi_spec"]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


@cache
def openapi_spec() -> dict[str, Any]:
    schema = orjson.loads(orjson.dumps(scenario_json_schema()).replace(b"#/$defs/", b"#/components/schemas/"))
    scenario = schema
    defs = scenario.pop("$defs", {})
    scenario.pop("$schema", None)
    scenario.pop("$id", None)
    run_request = {"allOf": [{"$ref": "#/components/schemas/Scenario"}, {
        "type": "object", "properties": {"target": {"type": "string", "description": "registered name or loopback URL"}}}]}
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
    bearer = [{"bearer": []}]
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
                            "run_id": {"type": "string"}, "state": {"type": "string"}, "summary_url": {"type": "string"}}}}}},
                    "400": _error("the body is not JSON"), "401": _error("no valid token"),
                    "403": _error("observer token, or a target that is not registered"),
                    "422": _error("invalid scenario: every field error")}}},
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
            "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics of every run, labelled sim=\"true\" (docs/server.md)",
                                 "responses": {"200": {"description": "Prometheus text or OpenMetrics format"}}}},
        },
    }
