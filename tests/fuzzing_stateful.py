"""Stateful fuzzing: schemathesis chains calls along the OpenAPI links (app/api/links.py) and the links it
infers, so that what one call creates (a version, a dataset, a job, a key) is what the next one reads,
aliases, predicts with, cancels or deletes. Every answer is held to the same contract as in tests/fuzzing.py.

Random bytes are never a valid ONNX model or dataset archive, so every other upload carries a real one
(the tiny classifier, a small image folder), and every other path parameter that names a model, dataset
or job aims at the seeded ones: the chains then reach past the 422s and 404s into the registry's states.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck

from tests.fuzzing import ADMIN_KEY, Report

# A job's event stream lasts as long as the job, and no worker runs the fuzzer's jobs.
NOT_CHAINED = r"/events$"


def fuzz_stateful(base_url: str, home: Path, *, scenarios: int, steps: int, aim: dict[str, str],
                  derandomize: bool = False) -> Report:
    from tests import onnx_models
    from tests.workers import synthetic

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json").exclude(path_regex=NOT_CHAINED)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    session = requests.Session()
    report = Report()
    real = {"/v1/models/{name}/versions": {"file": onnx_models.to_bytes(onnx_models.tiny_classifier()),
                                           "task": "classification"},
            "/v1/datasets": {"file": synthetic.imagefolder_zip(n=8, size=8), "task": "classification"}}
    scenarios_run = 0

    class Machine(schema.as_state_machine()):
        def setup(self) -> None:
            nonlocal scenarios_run
            scenarios_run += 1

        def before_call(self, case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            # Every other case, decided by what was generated (not by a counter: a scenario replayed must
            # make the same calls), gets real data.
            if zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode()) % 2:
                return
            if case.method.upper() == "POST" and case.path in real:
                case.body = dict(real[case.path])
            for key in case.path_parameters or {}:
                if key in aim and key != "version":
                    case.path_parameters[key] = aim[key]

        def get_call_kwargs(self, case) -> dict:
            return {"base_url": base_url, "session": session, "headers": headers, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            # Recorded, never raised: one broken answer must not end the run (schemathesis also calls some
            # operations without the key on purpose: those 401s are right).
            report.record(f"{case.method.upper()} {case.path}", case, response, home, headers)

    start = time.monotonic()
    # The server keeps what earlier scenarios did (a deleted version, a dataset uploaded before), so a
    # scenario hypothesis replays may branch differently, which it reports as a flaky strategy. That is
    # the nature of a stateful server, not a failure of the contract (answers are checked above, never
    # raised): start another round until enough scenarios have run.
    for _round in range(10):
        try:
            Machine.run(settings=hypothesis.settings(
                max_examples=max(1, scenarios - scenarios_run), stateful_step_count=steps, deadline=None,
                database=None, derandomize=derandomize, suppress_health_check=list(HealthCheck), print_blob=False,
                phases=[hypothesis.Phase.generate]))
        except (hypothesis.errors.FlakyStrategyDefinition, hypothesis.errors.Flaky):
            pass
        if scenarios_run >= scenarios:
            break
    report.seconds = time.monotonic() - start
    report.scenarios = scenarios_run
    return report
