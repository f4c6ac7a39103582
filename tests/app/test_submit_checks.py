"""Every check a worker would make before its first training step is made at submit (POST /v1/jobs) and
answered with a 422 naming the key: before, these jobs were queued and failed minutes later."""

from __future__ import annotations

import dataclasses

import pytest

from models import FAMILIES, family
from models.common.checks import ConfigError
from tests.app.test_fraud import csv_bytes
from tests.app.test_translation import tsv
from tests.conftest import assert_problem
from tests.workers.synthetic import imagefolder_zip, tar_gz, toy_pairs


def dataset(client, task: str, content: bytes, name: str) -> str:
    r = client.post("/v1/datasets", files={"file": (name, content)}, data={"task": task})
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def submit(client, task: str, dataset_id: str, config: dict):
    return client.post("/v1/jobs", json={"task": task, "dataset_id": dataset_id, "config": config})


def test_the_readme_translation_recipe_with_columns_alone_is_a_422_naming_the_direction(client):
    ds = dataset(client, "translation", tsv(toy_pairs(20)), "fra.txt")  # 3 tab-separated fields a line
    assert_problem(submit(client, "translation", ds, {"columns": "en,fr"}), 422, "config.source_lang",
                   "columns names en, fr", "source_lang and target_lang")
    assert_problem(submit(client, "translation", ds, {"columns": "en,fr,de,it", "source_lang": "en",
                                                      "target_lang": "fr"}), 422, "config.columns", "3 tab")
    assert submit(client, "translation", ds, {"columns": "en,fr", "target_lang": "fr"}).status_code == 202


def test_translation_languages_are_checked_against_an_archive(client):
    three = tar_gz({"train.de": b"a\nb\n", "train.en": b"x\ny\n", "train.fr": b"u\nv\n"})
    ds = dataset(client, "translation", three, "m.tar.gz")
    assert_problem(submit(client, "translation", ds, {"source_lang": "it", "target_lang": "en"}), 422,
                   "config.source_lang", "'it' is not in the dataset", "de, en, fr")
    assert_problem(submit(client, "translation", ds, {"source_lang": "de"}), 422, "config.target_lang")
    assert submit(client, "translation", ds, {"source_lang": "de", "target_lang": "fr"}).status_code == 202


def test_fraud_label_and_dropped_columns_are_checked_against_the_header(client):
    ds = dataset(client, "fraud", csv_bytes(60), "tx.csv")
    assert_problem(submit(client, "fraud", ds, {"label_column": "Fraud"}), 422, "config.label_column",
                   "no column 'Fraud'", "Time, V1")
    columns = ["Time", *(f"V{i}" for i in range(1, 9)), "Amount"]
    assert_problem(submit(client, "fraud", ds, {"drop_columns": columns}), 422, "config.drop_columns")


def test_images_too_small_for_the_network_are_a_422_naming_image_size(client):
    ds = dataset(client, "classification", imagefolder_zip(n=12, size=8), "small.zip")
    assert_problem(submit(client, "classification", ds, {"arch": "airbench"}), 422, "config.image_size",
                   "8x8", "airbench")
    assert submit(client, "classification", ds, {"arch": "airbench", "image_size": 16}).status_code == 202


@pytest.mark.parametrize("task", list(FAMILIES))
def test_a_dataset_uploaded_before_stats_were_recorded_skips_the_checks(task):
    contract = family(task)
    contract.check_config(contract.config(), {})  # nothing recorded: nothing refused


def test_recommendation_refuses_a_matrix_larger_than_the_graph_holds():
    from models.recommendation.config import Config, check_against_dataset

    with pytest.raises(ConfigError) as e:
        check_against_dataset(Config(), {"users": 20_000, "items": 20_000})
    assert e.value.key is None and "cells" in e.value.message


def test_captioning_from_a_classification_version_needs_the_same_backbone():
    from models.captioning.config import Config, check_init_from

    source = {"config": {"arch": "lenet", "width": 32, "depth": 20}, "preprocessing": {"channels": 1}}
    check_init_from(Config(), "digits:1", "classification", source, {"images": 9, "grey_images": 9})
    with pytest.raises(ConfigError) as e:
        check_init_from(dataclasses.replace(Config(), arch="resnet"), "digits:1", "classification", source, {})
    assert e.value.key == "init_from" and "arch lenet" in e.value.message
    with pytest.raises(ConfigError):
        check_init_from(Config(), "digits:1", "classification", source, {"images": 9, "grey_images": 2})
