"""Fuzz the server with its own OpenAPI document (schemathesis): no request may end in a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


def test_no_server_errors_on_fuzzed_requests(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.startswith("/admin"):
            continue  # admin endpoints act (reload): covered by test_auth and test_reload

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(checks=[not_a_server_error])
            fuzzed.append(case.operation.label)

        check()
    assert len(set(fuzzed)) >= 10, sorted(set(fuzzed))
