"""The whole OpenAPI document fuzzed by schemathesis against a real server, on every database backend:
no 500, no undeclared status code, no answer that breaks its declared schema, no SQL or server path in
an answer. `make fuzz` runs the same with many more cases (tests/fuzzing.py)."""

import os

import pytest

from tests import fuzzing, fuzzing_stateful
from tests.live_server import live_server

# Per operation and mode: 20 cases per operation, half of them invalid on purpose. The suite's share; `make fuzz`
# runs 350 (and 200 chains) where minutes do not count.
EXAMPLES = 10
CHAINS = 30
SEED = int(os.environ.get("DLSERVE_FUZZ_SEED", "16"))


@pytest.mark.slow
def test_no_operation_answers_500_or_breaks_its_contract(settings, capsys):
    with live_server(settings) as addr:
        base = f"http://{addr}"
        report = fuzzing.fuzz(base, settings.home.resolve(), examples=EXAMPLES, seed_value=SEED,
                              aim=fuzzing.seed(base, settings.home), log=lambda _m: None)
    with capsys.disabled():
        print(f"\nfuzz ({settings.database_url.split(':')[0]}, seed {SEED}):\n{report.summary()}")
    assert report.failures == [], "\n".join(report.failures[:20])
    short = {label: n for label, n in report.cases.items() if n < 2 * EXAMPLES}
    # Operations without parameters or body have only a handful of distinct requests to make.
    assert all(label.split()[1] in ("/healthz", "/readyz", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready",
                                    "/v1/models") for label in short), short
    assert report.requests >= 30 * 2 * EXAMPLES


@pytest.mark.slow
def test_chains_of_calls_along_the_links_keep_the_contract(settings, capsys):
    with live_server(settings) as addr:
        base = f"http://{addr}"
        report = fuzzing_stateful.fuzz_stateful(base, settings.home.resolve(), scenarios=CHAINS, steps=10,
                                                aim=fuzzing.seed(base, settings.home))
    with capsys.disabled():
        print(f"\nstateful fuzz ({settings.database_url.split(':')[0]}):\n{report.summary()}")
    assert report.failures == [], "\n".join(report.failures[:20])
    # the chains reached past creation: something was made (a version, a dataset, a key) for later calls to use
    assert report.scenarios >= CHAINS and report.statuses[201] > 0, report.summary()
