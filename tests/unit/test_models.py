"""Training and loading: deterministic data, artifacts with metadata, refusal of another scikit-learn's artifacts."""

from __future__ import annotations

import json
import shutil

import pytest

from model_api import data
from model_api.artifacts import METADATA, ModelArtifactError, check_artifacts
from model_api.models import load_models


def test_the_synthetic_data_is_the_same_for_the_same_seed_and_differs_for_another():
    rows_a, target_a = data.credit_dataset(300, seed=7)
    rows_b, target_b = data.credit_dataset(300, seed=7)
    rows_c, _ = data.credit_dataset(300, seed=8)

    assert rows_a == rows_b
    assert target_a.tolist() == target_b.tolist()
    assert rows_a != rows_c


def test_the_credit_data_has_the_classic_columns_and_categories():
    rows, target = data.credit_dataset(2000)

    assert list(rows[0]) == list(data.COURSE_APPLICANT)
    assert {row["home"] for row in rows} <= set(data.HOME)
    assert {row["job"] for row in rows} <= set(data.JOB)
    assert 0.1 < target.mean() < 0.4  # defaults are a minority, as in the real data


def test_the_default_target_depends_plausibly_on_records():
    rows, target = data.credit_dataset(4000)
    with_records = [t for row, t in zip(rows, target, strict=True) if row["records"] == "yes"]
    without = [t for row, t in zip(rows, target, strict=True) if row["records"] == "no"]

    assert sum(with_records) / len(with_records) > 1.5 * sum(without) / len(without)


def test_generated_houses_are_accepted_by_the_api_schema():
    from model_api.schemas import House

    houses = data.houses(seed=2)
    for _ in range(300):
        house = next(houses)
        assert isinstance(house["bedrooms"], int)
        House.model_validate_json(json.dumps(house))


def test_generated_payloads_are_varied_and_start_with_the_course_ones():
    applicants = data.applicants(seed=1)
    first = [next(applicants) for _ in range(50)]
    houses = data.houses(seed=1)

    assert first[0] == data.COURSE_APPLICANT
    assert len({json.dumps(a, sort_keys=True) for a in first}) == 50
    assert next(houses) == data.COURSE_HOUSE


def test_training_writes_metadata_with_version_seed_and_holdout_metrics(model_dir):
    metadata = json.loads((model_dir / METADATA).read_text())

    assert metadata["data_seed"] == data.DATA_SEED
    assert metadata["sklearn_version"]
    assert 0.6 < metadata["credit_risk"]["holdout_auc"] <= 1.0
    assert metadata["credit_risk"]["n_estimators"] == 200
    assert 0 < metadata["house_price"]["holdout_mape"] < 0.5


def test_the_loaded_models_predict(model_dir):
    models = load_models(model_dir)

    [probability] = models.default_probabilities([data.COURSE_APPLICANT])
    [price] = models.house_prices([data.COURSE_HOUSE])

    assert 0 <= probability <= 1
    assert price > 0


def test_artifacts_from_another_scikit_learn_are_refused_with_a_retrain_hint(model_dir, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(model_dir, copy)
    metadata = json.loads((copy / METADATA).read_text())
    metadata["sklearn_version"] = "0.24.2"
    (copy / METADATA).write_text(json.dumps(metadata))

    with pytest.raises(ModelArtifactError, match=r"trained with scikit-learn 0\.24\.2.*retrain.*model_api\.train"):
        load_models(copy)


def test_missing_artifacts_say_how_to_train(tmp_path):
    with pytest.raises(ModelArtifactError, match=r"no model metadata.*retrain"):
        check_artifacts(tmp_path)


def test_an_incomplete_artifact_folder_is_refused(model_dir, tmp_path):
    copy = tmp_path / "partial"
    shutil.copytree(model_dir, copy)
    (copy / "credit_risk.joblib").unlink()

    with pytest.raises(ModelArtifactError, match="missing model artifact"):
        check_artifacts(copy)
