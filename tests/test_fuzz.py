"""Every registered service's HTTP API, fuzzed from its own OpenAPI document
(schemathesis): no input may give a server error, and every answer must be one the
document declares, in the shape it declares. A service is fuzzed by being registered
(`shopfloor_runtime.registry.services()`); nothing here names one.

Each service runs in process, on a SQLite store of its own, with its lifespan (the
order service's group-commit writer and projector run in it), without relay or
consumer. The phases: the documented examples, schemathesis' coverage phase (edges of
every constraint), random fuzzing, and a stateful walk along the documented links (place
an order, then pay, cancel, refund and read it). Bounded so the whole file stays well
under two minutes on a 2-core machine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.python import asgi
from shopfloor_runtime.registry import ServiceSpec, services

#: How much each operation is fuzzed, and how long a stateful walk may be.
MAX_EXAMPLES = 40
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 8
STATEFUL_RESTARTS = 3

SPECS = {spec.name: spec for spec in services()}
#: Answers seen, per service, operation and status: printed per service (`-s`), and the
#: stateful test checks its walk got somewhere.
SEEN: Counter[tuple[str, str, int]] = Counter()

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261123,  # reproducible in CI; change it to explore
        "generation": {"max-examples": MAX_EXAMPLES},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
        },
        "checks": {
            "max_response_time": 5.0,
            # Shape is the schema's business, rules are the code's: a well-formed request
            # may still break a rule (an amount that is not the total, a coupon below its
            # minimum), and that is a 422 naming the rule, not a bug. The opposite check
            # (a request the schema forbids must be refused) stays on.
            "positive_data_acceptance": {"enabled": False},
        },
        "operations": [
            {
                # A readiness probe says 503 when a dependency is away, by design (here
                # the broker always is); any other 5xx is still a failure.
                "include-path": "/ready",
                "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]}},
            }
        ],
    }
)


@pytest.fixture(scope="module", params=sorted(SPECS))
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    spec: ServiceSpec = SPECS[request.param]
    settings = spec.settings(
        store={"data_dir": tmp_path_factory.mktemp(spec.name)},
        relay={"enabled": False},
        consumer={"enabled": False},
    )
    service = spec.build(settings)
    try:
        yield service
    finally:
        asgi.shutdown_lifespans()  # schemathesis started the app's lifespan: stop its loops
        service.close()
        seen = sorted((k, n) for k, n in SEEN.items() if k[0] == spec.name)
        print(f"\n{spec.name}: {sum(n for _, n in seen)} requests")
        for (_, label, status), n in seen:
            print(f"  {n:5d}  {status}  {label}")


@pytest.fixture(scope="module")
def api_schema(running: Any) -> Any:
    # Loading the document starts the app's lifespan (schemathesis' ASGI transport keeps
    # it running), so placements are answered by the group-commit writer.
    return schemathesis.openapi.from_asgi("/openapi.json", running.http, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 renames the pytest item per operation through `node._nodeid`,
    # which pytest 9.2 no longer has; give it one to rename (only the report uses it).
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gives_a_server_error_or_an_undocumented_answer(case: Any, running: Any) -> None:
    response = case.call_and_validate()
    SEEN[(_name(running), case.operation.label, response.status_code)] += 1


def _name(service: Any) -> str:
    return next(name for name, spec in SPECS.items() if isinstance(service.settings, spec.settings))


def test_walking_the_documented_links_never_breaks_the_api(api_schema: Any, running: Any) -> None:
    name = _name(running)

    class Walk(api_schema.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            SEEN[(name, f"stateful {case.operation.label}", response.status_code)] += 1

    for _ in range(STATEFUL_RESTARTS):
        try:
            Walk.run(
                settings=hypothesis.settings(
                    max_examples=STATEFUL_EXAMPLES,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[hypothesis.Phase.generate],
                )
            )
            break
        except FlakyStrategyDefinition:
            # schemathesis steers its walk by what the API answered so far (which links
            # lead somewhere), so Hypothesis can meet a choice that now draws differently;
            # schemathesis' own runner starts the walk again then, and so does this test.
            # A failed check is a FailureGroup, never this.
            continue
    walked = {label for (service, label, status) in SEEN if service == name and status < 400}
    if not _declares_links(running):
        # Its resources are made by events, not by its API (fulfilment's shipments come
        # from confirmed orders): there is nothing to create and follow, and the walk
        # checks only that no sequence of calls breaks it.
        assert walked, f"the walk got no answer below 400 from {name}"
        return
    followed = {label for label in walked if "{" in label}  # reached through a link
    assert followed, f"the walk never followed a link from a created resource: {walked}"


def _declares_links(service: Any) -> bool:
    document = service.http.openapi()
    return any(
        "links" in answer
        for path in document["paths"].values()
        for operation in path.values()
        for answer in operation.get("responses", {}).values()
    )
