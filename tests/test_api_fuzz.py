"""A schema-driven fuzz run of the whole API: schemathesis reads the OpenAPI document of a
running ``vidscope serve`` (tests/serve_fixture.py) and sends requests built from it, valid and
not (out-of-range numbers, odd strings, missing parameters): no answer may be a server error.

Bounded: ``EXAMPLES`` requests per operation (~10 operations, ~30 s here). The event stream is
left out: it never ends, by design (tests/test_serve.py checks it). Hypothesis drives each
operation here rather than through schemathesis' pytest plugin (its fixture loader does not run
on pytest 9)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow
EXAMPLES = 30


def test_no_request_makes_the_server_fail(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").exclude(path="/api/v1/events")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    failures = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(base_url=server.url)
            if response.status_code >= 500:
                failures.append((operation.label, case.path_parameters, case.query, response.text[:300]))

        check()
    assert failures == []
