"""Schema-driven fuzzing of the whole OpenAPI document (schemathesis) against a real uvicorn server.

Used by tests/app/test_fuzz.py (a short run in `make test`) and by `make fuzz` (`python -m tests.fuzzing`,
a long one). Real objects are seeded first (a model version with the production alias, a dataset, a
queued job) and half the generated cases aim their path parameters at them, so the fuzzer reaches past
404s into predict, infer and the registry. Each response must: not be a 500 (or any 5xx but a 503 that
carries Retry-After, or a 504), have a status code its operation declares, match the declared schema and
content type, and carry no SQL, stack frame, object repr or server path.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

ADMIN_KEY = "test-admin-key-0123456789"
MODEL = "fuzz-model"
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Destructive operations last, so the seeded objects serve the other operations first.
_ORDER = {"GET": 0, "HEAD": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
_LEAKS = re.compile(r"Traceback|File \"|\bline \d+, in\b| object at 0x|sqlalchemy|psycopg|sqlite3|"
                    r"\bSELECT\b.*\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.*\bSET\b|\[SQL:|/tmp/|/home/|site-packages",
                    re.IGNORECASE | re.DOTALL)


@dataclass
class Report:
    cases: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    scenarios: int = 0  # stateful runs: chains of calls made

    def record(self, label: str, case, response: requests.Response, home: Path, headers: dict[str, str]) -> None:
        """Counts the answer and notes every way it breaks the contract."""
        self.cases[label] += 1
        self.statuses[response.status_code] += 1
        problems = []
        if response.status_code >= 500 and not (response.status_code == 504 or (
                response.status_code == 503 and "retry-after" in response.headers)):
            problems.append(f"{response.status_code} answer")
        leak = _leak(response, home)
        if leak:
            problems.append(leak)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as e:  # every check that failed, explained
            problems += [f"{type(x).__name__}: {' '.join(str(x).split())[:300]}" for x in e.exceptions]
        if problems:
            self.failures.append(f"{label} -> {response.status_code}: {'; '.join(problems)}\n"
                                 f"    {case.as_curl_command(headers=headers)[:600]}\n"
                                 f"    {response.text[:300]}")

    @property
    def requests(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        lines = [f"{n:6d}  {label}" for label, n in sorted(self.cases.items())]
        chains = f" in {self.scenarios} chains" if self.scenarios else ""
        lines.append(f"{self.requests} requests{chains} over {len(self.cases)} operations in {self.seconds:.1f} s; "
                     f"statuses {dict(sorted(self.statuses.items()))}; {len(self.failures)} failure(s); "
                     f"{self.statuses.get(500, 0)} answered 500")
        return "\n".join(lines)


def seed(base_url: str, home: Path) -> dict[str, str]:
    """Real objects for the fuzzer to find: a model version (aliased production), a dataset, a queued job."""
    from tests import onnx_models
    from tests.workers import synthetic

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    model = onnx_models.to_bytes(onnx_models.tiny_classifier())
    r = s.post(f"{base_url}/v1/models/{MODEL}/versions", files={"file": ("m.onnx", model)},
               data={"task": "classification"})
    r.raise_for_status()
    s.put(f"{base_url}/v1/models/{MODEL}/aliases/production", json={"version": 1}).raise_for_status()
    r = s.post(f"{base_url}/v1/datasets", files={"file": ("d.zip", synthetic.imagefolder_zip(n=8, size=8))},
               data={"task": "classification"})
    r.raise_for_status()
    dataset_id = r.json()["id"]
    r = s.post(f"{base_url}/v1/jobs", json={"task": "classification", "dataset_id": dataset_id})
    r.raise_for_status()
    # cancelled at once (it is queued): its event stream ends instead of following a job no worker runs
    s.post(f"{base_url}/v1/jobs/{r.json()['id']}/cancel").raise_for_status()
    return {"name": MODEL, "version": 1, "alias": "production", "dataset_id": dataset_id, "job_id": r.json()["id"]}


def _leak(response: requests.Response, home: Path) -> str | None:
    kind = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if str(kind).startswith(("application/octet-stream", "application/zip")):
        return None  # a download (a model's bytes), not prose that could quote the server
    text = response.content[:100_000].decode("utf-8", "replace")
    if str(home) in text:
        return f"the answer names the server's folder {home}"
    m = _LEAKS.search(text)
    return f"the answer carries {m.group(0)[:60]!r}" if m else None


def fuzz(base_url: str, home: Path, *, examples: int, seed_value: int, aim: dict[str, str],
         log=print) -> Report:
    """`examples` positive and `examples` negative cases for every operation of the document."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = Report()
    start = time.monotonic()
    operations = sorted((r.ok() for r in schema.get_all_operations()),
                        key=lambda op: (_ORDER[op.method.upper()], op.path))
    session = requests.Session()
    for op in operations:
        for mode in GenerationMode:
            _fuzz_operation(op, mode, base_url, home, session, examples, seed_value, aim, report, log)
    report.seconds = time.monotonic() - start
    return report


def _fuzz_operation(op, mode, base_url, home, session, examples, seed_value, aim, report, log) -> None:
    label = f"{op.method.upper()} {op.path}"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        strategy = op.as_strategy(generation_mode=mode)
    except Exception as e:  # an operation with nothing to make invalid has no negative cases
        log(f"  {label} ({mode.value}): no cases ({type(e).__name__})")
        return

    @hypothesis.given(case=strategy, aimed=st.booleans())
    @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(HealthCheck), print_blob=False)
    @hypothesis.seed(seed_value)
    def run(case, aimed):
        if aimed and case.path_parameters:
            for key in case.path_parameters:
                if key in aim:
                    case.path_parameters[key] = aim[key]
        case.headers = {**(case.headers or {}), **headers}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        report.record(label, case, response, home, headers)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        log(f"  {label} ({mode.value}): unsatisfiable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the whole API of a fresh dlserve (make fuzz).")
    parser.add_argument("--examples", type=int, default=400, help="generated cases per operation and mode")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--chains", type=int, default=500, help="stateful scenarios: chains of calls along links")
    args = parser.parse_args(argv)
    seed_value = args.seed if args.seed is not None else int(time.time())
    print(f"seed {seed_value}, {args.examples} examples per operation and mode", flush=True)
    from app.db import migrate
    from app.settings import Settings
    from tests.live_server import live_server

    home = Path(tempfile.mkdtemp(prefix="dlserve-fuzz-"))
    url = args.database_url or f"sqlite:///{home / 'dlserve.db'}"
    migrate.upgrade(url)
    settings = Settings(home=home, database_url=url, admin_key=ADMIN_KEY, _env_file=None)
    with live_server(settings) as addr:
        base = f"http://{addr}"
        aim = seed(base, home)
        report = fuzz(base, home, examples=args.examples, seed_value=seed_value, aim=aim,
                      log=lambda m: print(m, flush=True))
        from tests.fuzzing_stateful import fuzz_stateful

        chained = fuzz_stateful(base, home, scenarios=args.chains, steps=10, aim=aim) if args.chains else Report()
    print("\n".join(report.failures + chained.failures))
    print(report.summary())
    print(f"seed {seed_value}")
    if args.chains:
        print(f"stateful:\n{chained.summary()}")
    return 1 if report.failures or chained.failures else 0


if __name__ == "__main__":
    sys.exit(main())
