"""A schema-driven fuzz run of the whole API: schemathesis reads the OpenAPI document of a
running ``vidscope serve`` (tests/serve_fixture.py) and sends requests built from it, valid and
not (out-of-range numbers, odd strings, missing parameters): no answer may be a server error.

Bounded: ``EXAMPLES`` requests per operation (~10 operations, ~30 s here). The event stream is
left out: it never ends, by design (tests/test_serve.py checks it)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.slow
EXAMPLES = 30


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json").exclude(path="/api/v1/events")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_server_fail(case):
    case.call_and_validate(checks=[not_a_server_error])
