"""The job config key `devices` (issue 22) at submit: bounded, stored with the config, and refused with a
422 that says why for a family that cannot train in several processes."""

import pytest

from models import FAMILIES, family
from models.common.job_keys import MAX_DEVICES
from tests.conftest import assert_problem

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend


def test_devices_is_kept_with_the_config_unless_it_is_the_default_one(client, dataset):
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"],
                                      "config": {"epochs": 1, "devices": 2}})
    assert r.status_code == 202, r.text
    assert r.json()["config"]["devices"] == 2 and r.json()["config"]["epochs"] == 1
    # one device is the default, and a config that says so is what the family's Config takes
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"],
                                      "config": {"devices": 1}})
    assert r.status_code == 202 and "devices" not in r.json()["config"]


@pytest.mark.parametrize("devices", [0, -1, MAX_DEVICES + 1, "two", 1.5, None])
def test_devices_out_of_bounds_is_a_422_naming_the_key(client, dataset, devices):
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset["id"],
                                      "config": {"devices": devices}})
    assert_problem(r, 422)
    assert "config.devices" in r.json()["detail"]


def test_a_family_that_is_not_distributed_is_refused_several_devices(client):
    plain = [t for t in FAMILIES if family(t) is not None and not family(t).distributed]
    assert plain, "every family trains in several processes: nothing to refuse"
    for task in plain:
        # refused on the config alone, before the dataset is looked at
        r = client.post("/v1/jobs", json={"task": task, "dataset_id": "no-such", "config": {"devices": 2}})
        assert_problem(r, 422)
        assert r.json()["detail"].startswith(f"config.devices: {task} cannot train in several processes"), r.text
    assert {t for t in ("classification", "detection", "translation") if family(t).distributed} == \
        {"classification", "detection", "translation"}
