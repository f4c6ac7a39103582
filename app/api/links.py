"""OpenAPI links: which answer feeds which next call (the version an upload made, the id of a new dataset,
job or key). They document the API's workflows for clients, and they are what a stateful fuzzer follows
to chain calls (tests/fuzzing.py): upload a version, then read, alias, predict with and delete it."""

from __future__ import annotations

from typing import Any

# (from method, from path, status) -> [(link name, to method, to path, {parameter: runtime expression})]
_NAME = {"name": "$request.path.name"}
_VERSION = {**_NAME, "version": "$response.body#/version"}
LINKS: dict[tuple[str, str, str], list[tuple[str, str, str, dict[str, str]]]] = {
    ("post", "/v1/models/{name}/versions", "201"): [
        ("GetVersion", "get", "/v1/models/{name}/versions/{version}", _VERSION),
        ("DeleteVersion", "delete", "/v1/models/{name}/versions/{version}", _VERSION),
        ("GetModel", "get", "/v1/models/{name}", _NAME),
        ("SetAlias", "put", "/v1/models/{name}/aliases/{alias}", _NAME),
        ("PredictWithVersion", "post", "/v1/models/{name}/predict", _VERSION),
        ("V2VersionMetadata", "get", "/v2/models/{name}/versions/{version}", _VERSION),
        ("V2InferVersion", "post", "/v2/models/{name}/versions/{version}/infer", _VERSION),
        ("DownloadVersion", "get", "/v1/models/{name}/versions/{version}/artifact", _VERSION),
    ],
    ("put", "/v1/models/{name}/aliases/{alias}", "200"): [
        ("DeleteAlias", "delete", "/v1/models/{name}/aliases/{alias}",
         {**_NAME, "alias": "$request.path.alias"}),
        ("PredictWithAlias", "post", "/v1/models/{name}/predict", {**_NAME, "alias": "$request.path.alias"}),
        ("AliasHistory", "get", "/v1/models/{name}/aliases/{alias}/history",
         {**_NAME, "alias": "$request.path.alias"}),
        ("RollbackAlias", "post", "/v1/models/{name}/aliases/{alias}/rollback",
         {**_NAME, "alias": "$request.path.alias"}),
    ],
    ("post", "/v1/datasets", "201"): [
        ("GetDataset", "get", "/v1/datasets/{dataset_id}", {"dataset_id": "$response.body#/id"}),
        ("DeleteDataset", "delete", "/v1/datasets/{dataset_id}", {"dataset_id": "$response.body#/id"}),
        ("DatasetUsers", "get", "/v1/datasets/{dataset_id}/users", {"dataset_id": "$response.body#/id"}),
    ],
    ("post", "/v1/datasets", "200"): [  # the same bytes again: the dataset uploaded before
        ("GetDataset", "get", "/v1/datasets/{dataset_id}", {"dataset_id": "$response.body#/id"}),
        ("DeleteDataset", "delete", "/v1/datasets/{dataset_id}", {"dataset_id": "$response.body#/id"}),
        ("DatasetUsers", "get", "/v1/datasets/{dataset_id}/users", {"dataset_id": "$response.body#/id"}),
    ],
    ("post", "/v1/jobs", "202"): [
        ("GetJob", "get", "/v1/jobs/{job_id}", {"job_id": "$response.body#/id"}),
        ("GetJobMetrics", "get", "/v1/jobs/{job_id}/metrics", {"job_id": "$response.body#/id"}),
        ("CancelJob", "post", "/v1/jobs/{job_id}/cancel", {"job_id": "$response.body#/id"}),
        ("AnnotateJob", "patch", "/v1/jobs/{job_id}", {"job_id": "$response.body#/id"}),
        ("ListJobArtifacts", "get", "/v1/jobs/{job_id}/artifacts", {"job_id": "$response.body#/id"}),
        ("GetJobLog", "get", "/v1/jobs/{job_id}/log", {"job_id": "$response.body#/id"}),
    ],
    ("post", "/v1/keys", "201"): [
        ("GetKey", "get", "/v1/keys/{prefix}", {"prefix": "$response.body#/prefix"}),
        ("RevokeKey", "post", "/v1/keys/{prefix}/revoke", {"prefix": "$response.body#/prefix"}),
        ("DeleteKey", "delete", "/v1/keys/{prefix}", {"prefix": "$response.body#/prefix"}),
    ],
}


def add_links(doc: dict[str, Any]) -> None:
    """Writes LINKS into the answers of `doc` (an OpenAPI document), by the target's operationId."""
    paths = doc.get("paths", {})
    for (method, path, status), links in LINKS.items():
        answer = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if answer is None:
            continue  # a route this build does not have
        for link, to_method, to_path, parameters in links:
            target = paths.get(to_path, {}).get(to_method)
            if target is not None:
                answer.setdefault("links", {})[link] = {"operationId": target["operationId"],
                                                        "parameters": parameters}
