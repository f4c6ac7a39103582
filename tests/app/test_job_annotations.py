"""PATCH /v1/jobs/{id}: tags and a note on a run, kept in SQL (the tag filter uses them), bounded, scoped."""

import pytest

from tests.app.test_jobs import submit
from tests.app.test_web_session import make_key
from tests.conftest import assert_problem


@pytest.fixture
def job(client, dataset):  # noqa: F811
    return submit(client, dataset).json()


def test_tags_and_a_note_are_kept_shown_and_found(client, dataset, job):  # noqa: F811
    other = submit(client, dataset).json()
    r = client.patch(f"/v1/jobs/{job['id']}", json={"tags": ["sweep", "baseline", "sweep"], "note": "<b>lr</b> 0.1"})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["baseline", "sweep"] and r.json()["note"] == "<b>lr</b> 0.1"
    assert client.get(f"/v1/jobs/{job['id']}").json()["tags"] == ["baseline", "sweep"]
    assert [j["id"] for j in client.get("/v1/jobs", params={"tag": "sweep"}).json()["items"]] == [job["id"]]
    assert [j["id"] for j in client.get("/v1/jobs", params={"q": "<b>"}).json()["items"]] == [job["id"]]

    # tags are replaced; a field left out is kept; "" clears the note
    r = client.patch(f"/v1/jobs/{job['id']}", json={"tags": ["v2"]})
    assert r.json()["tags"] == ["v2"] and r.json()["note"] == "<b>lr</b> 0.1"
    assert client.get("/v1/jobs", params={"tag": "sweep"}).json()["total"] == 0
    r = client.patch(f"/v1/jobs/{job['id']}", json={"note": ""})
    assert r.json()["note"] is None and r.json()["tags"] == ["v2"]
    assert client.patch(f"/v1/jobs/{job['id']}", json={}).json()["tags"] == ["v2"]
    assert client.patch(f"/v1/jobs/{job['id']}", json={"tags": []}).json()["tags"] == []
    assert client.get(f"/v1/jobs/{other['id']}").json()["tags"] == []


@pytest.mark.parametrize("body, field", [
    ({"tags": [f"t{i}" for i in range(21)]}, "body.tags"),
    ({"tags": ["x" * 65]}, "body.tags[0]"),
    ({"tags": [""]}, "body.tags[0]"),
    ({"tags": ["<script>"]}, "body.tags[0]"),
    ({"tags": ["-dash-first"]}, "body.tags[0]"),
    ({"tags": "sweep"}, "body.tags"),
    ({"note": "n" * 10_001}, "body.note"),
    ({"note": "a\x00b"}, "body.note"),
    ({"notes": "typo"}, "body.notes"),
])
def test_bad_annotations_are_422_naming_the_field(client, job, body, field):
    r = client.patch(f"/v1/jobs/{job['id']}", json=body)
    assert field in [e["field"] for e in assert_problem(r, 422)["errors"]]
    assert client.get(f"/v1/jobs/{job['id']}").json()["tags"] == []


def test_the_longest_note_and_the_most_tags_fit(client, job):
    tags = [f"tag-{i:02d}.x:y+z_" for i in range(20)]
    r = client.patch(f"/v1/jobs/{job['id']}", json={"tags": tags, "note": "é" * 10_000})
    assert r.status_code == 200 and r.json()["tags"] == sorted(tags) and len(r.json()["note"]) == 10_000


def test_a_read_key_cannot_annotate_and_an_unknown_job_is_404(client, settings, job):
    reader = {"Authorization": f"Bearer {make_key(settings, ['read'])}"}
    assert_problem(client.patch(f"/v1/jobs/{job['id']}", json={"note": "x"}, headers=reader), 403, "'train'")
    assert_problem(client.patch("/v1/jobs/nope", json={"note": "x"}), 404, "no job")


def test_the_openapi_declares_the_bounds(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["JobPatch"]["properties"]
    tags = schema["tags"]["anyOf"][0]
    assert tags["maxItems"] == 20 and tags["items"]["maxLength"] == 64 and tags["items"]["pattern"]
    assert schema["note"]["anyOf"][0]["maxLength"] == 10_000
