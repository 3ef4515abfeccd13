"""Property-based fuzzing of the intake API against its own OpenAPI schema (schemathesis).

Every generated request, valid or not, must get a response that is not a 5xx and that matches the
schema's status codes, content types and bodies. (Driven through Hypothesis directly: schemathesis'
pytest plugin does not run under pytest 9.)

One check is left out: "a schema-valid request must be accepted". By design the API answers 422 to
some schema-valid bodies: an idempotency key reused with another body, and a deployment's limits set
below the schema's ceilings.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from forgetd.api.app import create_app
from forgetd.settings import Settings
from tests.conftest import ADMIN_TOKEN

EXAMPLES_PER_OPERATION = 100


def test_no_server_errors_and_responses_match_the_schema(settings: Settings) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5

    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                   excluded_checks=[positive_data_acceptance])

        fuzz()
