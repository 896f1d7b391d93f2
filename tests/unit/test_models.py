"""Training and loading: deterministic data, artifacts with metadata, refusal of another scikit-learn's artifacts."""

from __future__ import annotations

import json
import shutil

import joblib
import numpy as np
import pytest

from model_api import data
from model_api.artifacts import (
    CREDIT_ARTIFACT,
    CREDIT_ONNX,
    HOUSE_ARTIFACT,
    HOUSE_ONNX,
    METADATA,
    ModelArtifactError,
    check_artifacts,
)
from model_api.models import Columns, load_models
from model_api.vocabulary import MODEL_RUNTIMES

# Rows no model was trained on: the same generator with another seed.
HELD_OUT_SEED = data.DATA_SEED + 1


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
    assert set(metadata["onnx_versions"]) == {"skl2onnx", "onnx", "onnxruntime"}
    assert (model_dir / CREDIT_ONNX).is_file()
    assert (model_dir / HOUSE_ONNX).is_file()


@pytest.mark.parametrize("model_runtime", MODEL_RUNTIMES)
def test_the_loaded_models_predict(model_dir, model_runtime):
    models = load_models(model_dir, model_runtime)

    [probability] = models.default_probabilities([data.COURSE_APPLICANT])
    [price] = models.house_prices([data.COURSE_HOUSE])

    assert models.model_runtime == model_runtime
    assert 0 <= probability <= 1
    assert price > 0


def test_onnx_and_scikit_learn_agree_within_1e_5_on_held_out_rows(model_dir):
    applicants, _ = data.credit_dataset(2000, seed=HELD_OUT_SEED)
    houses, _ = data.house_dataset(1000, seed=HELD_OUT_SEED)
    sklearn, onnx = load_models(model_dir, "sklearn"), load_models(model_dir, "onnx")

    probabilities = np.array(sklearn.default_probabilities(applicants))
    prices = np.array(sklearn.house_prices(houses))

    np.testing.assert_allclose(onnx.default_probabilities(applicants), probabilities, rtol=0, atol=1e-5)
    # Prices are around a million dollars: float32 holds them to about 1e-7 of their size, so the bound is relative.
    np.testing.assert_allclose(onnx.house_prices(houses), prices, rtol=1e-5, atol=0)
    assert len(set(probabilities.round(3))) > 100, "too few distinct probabilities for the comparison to mean much"


@pytest.mark.parametrize("model_runtime", MODEL_RUNTIMES)
def test_both_runtimes_answer_a_batch_row_for_row_as_one_row_at_a_time(model_dir, model_runtime):
    models = load_models(model_dir, model_runtime)
    applicants, _ = data.credit_dataset(64, seed=HELD_OUT_SEED)

    batched = models.default_probabilities(applicants)
    one_by_one = [models.default_probabilities([applicant])[0] for applicant in applicants]

    assert batched == pytest.approx(one_by_one, abs=1e-6)


def test_artifacts_from_another_scikit_learn_are_refused_with_a_retrain_hint(model_dir, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(model_dir, copy)
    metadata = json.loads((copy / METADATA).read_text())
    metadata["sklearn_version"] = "0.24.2"
    (copy / METADATA).write_text(json.dumps(metadata))

    with pytest.raises(ModelArtifactError, match=r"trained with scikit-learn 0\.24\.2.*retrain.*model_api\.train"):
        load_models(copy, "sklearn")


def test_missing_artifacts_say_how_to_train(tmp_path):
    with pytest.raises(ModelArtifactError, match=r"no model metadata.*retrain"):
        check_artifacts(tmp_path)


@pytest.mark.parametrize("missing", ["credit_risk.joblib", CREDIT_ONNX, HOUSE_ONNX])
def test_an_incomplete_artifact_folder_is_refused_with_a_retrain_hint(model_dir, tmp_path, missing):
    copy = tmp_path / "partial"
    shutil.copytree(model_dir, copy)
    (copy / missing).unlink()

    with pytest.raises(ModelArtifactError, match=rf"missing model artifact .*{missing}.*retrain"):
        check_artifacts(copy)


def test_the_columns_are_exactly_what_the_fitted_vectorizer_makes_of_a_row(model_dir):
    """The API's precomputed column mapping against DictVectorizer.transform itself, on held-out rows, on the API's
    own payloads, and on rows with a category the vectorizer never saw and a key it does not know (both dropped)."""
    applicants, _ = data.credit_dataset(500, seed=HELD_OUT_SEED)
    houses, _ = data.house_dataset(500, seed=HELD_OUT_SEED)
    unseen = [{**data.COURSE_APPLICANT, "home": "HOUSEBOAT", "unknown_key": 3.0}]
    for artifact, rows in ((CREDIT_ARTIFACT, [*applicants, data.COURSE_APPLICANT, *unseen]), (HOUSE_ARTIFACT, houses)):
        vectorizer = joblib.load(model_dir / artifact).named_steps["features"]
        for dtype in (np.float64, np.float32):
            columns = Columns(vectorizer, dtype)(rows)
            assert columns.dtype == dtype
            np.testing.assert_array_equal(columns, vectorizer.transform(rows).astype(dtype))
    assert any(isinstance(value, str) for value in data.COURSE_APPLICANT.values()), "no category to one-hot"
