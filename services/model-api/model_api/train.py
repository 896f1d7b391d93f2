"""Train both models on the synthetic data and write their artifacts: `python -m model_api.train [--out DIR]`."""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.metrics import mean_absolute_percentage_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from model_api import __version__, data
from model_api.artifacts import CREDIT_ARTIFACT, CREDIT_ONNX, HOUSE_ARTIFACT, HOUSE_ONNX, METADATA
from model_api.models import CREDIT_OUTPUT, HOUSE_OUTPUT, ONNX_INPUT, onnx_forest
from model_api.settings import load_settings

# About 200 trees of depth about 10: one prediction costs several milliseconds of CPU, whatever the batch size
# up to a few dozen rows. That is the lab's CPU-bound workload, and why batching pays.
CREDIT_FOREST = {"n_estimators": 200, "max_depth": 10, "min_samples_leaf": 3}
HOUSE_FOREST = {"n_estimators": 20, "max_depth": 8}
MODEL_SEED = 1
# ONNX opset 17 and ai.onnx.ml 3: what skl2onnx 1.20 writes for forests and the pinned onnxruntime runs.
ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}


def _fit(forest: BaseEstimator, rows: list[dict], target: np.ndarray) -> tuple[Pipeline, list[dict], np.ndarray]:
    """Fit DictVectorizer + `forest` on 80% of the rows; return the pipeline and the 20% held out."""
    x_train, x_test, y_train, y_test = train_test_split(rows, target, test_size=0.2, random_state=MODEL_SEED)
    pipeline = Pipeline([("features", DictVectorizer(sparse=False)), ("forest", forest)])
    return pipeline.fit(x_train, y_train), x_test, y_test


def _to_onnx(pipeline: Pipeline) -> bytes:
    """The pipeline's forest in ONNX, taking the DictVectorizer's columns as float32 (the vectorizer stays in Python).

    Classifiers without ZipMap, so that the probabilities come out as one array rather than a dict per row.
    """
    forest = pipeline.named_steps["forest"]
    columns = len(pipeline.named_steps["features"].feature_names_)
    options = {id(forest): {"zipmap": False}} if hasattr(forest, "predict_proba") else None
    model = to_onnx(
        forest,
        initial_types=[(ONNX_INPUT, FloatTensorType([None, columns]))],
        options=options,
        target_opset=ONNX_OPSET,
    )
    return model.SerializeToString()


def _onnx_max_abs_diff(
    pipeline: Pipeline, onnx: bytes, output: tuple[str, int], reference: np.ndarray, rows: list[dict]
) -> float:
    """How far ONNX Runtime's answers on the held-out rows are from scikit-learn's `reference`, at most."""
    return float(np.max(np.abs(onnx_forest(pipeline, onnx, *output)(rows) - reference)))


def train(out: Path, seed: int = data.DATA_SEED) -> dict:
    """Train, evaluate on a holdout, write both models (scikit-learn and ONNX) and the metadata; return the metadata."""
    out.mkdir(parents=True, exist_ok=True)
    credit, x_test, y_test = _fit(
        RandomForestClassifier(**CREDIT_FOREST, random_state=MODEL_SEED, n_jobs=1), *data.credit_dataset(seed=seed)
    )
    credit_probabilities = credit.predict_proba(x_test)[:, 1]
    credit_auc = roc_auc_score(y_test, credit_probabilities)
    credit_onnx = _to_onnx(credit)
    credit_onnx_diff = _onnx_max_abs_diff(credit, credit_onnx, CREDIT_OUTPUT, credit_probabilities, x_test)
    house, x_test, y_test = _fit(
        RandomForestRegressor(**HOUSE_FOREST, random_state=MODEL_SEED, n_jobs=1), *data.house_dataset(seed=seed)
    )
    house_prices = house.predict(x_test)
    house_mape = mean_absolute_percentage_error(y_test, house_prices)
    house_onnx = _to_onnx(house)
    house_onnx_diff = _onnx_max_abs_diff(house, house_onnx, HOUSE_OUTPUT, house_prices, x_test)

    # Write the metadata last: its presence says the artifacts beside it are complete.
    (out / METADATA).unlink(missing_ok=True)
    joblib.dump(credit, out / CREDIT_ARTIFACT)
    joblib.dump(house, out / HOUSE_ARTIFACT)
    (out / CREDIT_ONNX).write_bytes(credit_onnx)
    (out / HOUSE_ONNX).write_bytes(house_onnx)
    metadata = {
        "model_api_version": __version__,
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        # Informative only: an ONNX file runs on any onnxruntime that knows its opset; the check at start is
        # on scikit-learn, whose pickles and DictVectorizers both runtimes load.
        "onnx_versions": {name: version(name) for name in ("skl2onnx", "onnx", "onnxruntime")},
        "data_seed": seed,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "credit_risk": {
            "model": "DictVectorizer + RandomForestClassifier",
            **CREDIT_FOREST,
            "holdout_auc": credit_auc,
            "onnx_holdout_max_abs_diff": credit_onnx_diff,
        },
        "house_price": {
            "model": "DictVectorizer + RandomForestRegressor",
            **HOUSE_FOREST,
            "holdout_mape": house_mape,
            "onnx_holdout_max_abs_diff": house_onnx_diff,
        },
    }
    (out / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="artifact folder (default: LAB_MODEL_DIR)")
    parser.add_argument("--seed", type=int, default=data.DATA_SEED, help="synthetic data seed")
    args = parser.parse_args(argv)
    out = args.out or load_settings().model_dir
    started = time.perf_counter()
    metadata = train(out, args.seed)
    credit, house = metadata["credit_risk"], metadata["house_price"]
    print(
        f"trained in {time.perf_counter() - started:.1f}s with scikit-learn {metadata['sklearn_version']} -> {out}\n"
        f"  credit risk: holdout AUC {credit['holdout_auc']:.3f}, "
        f"ONNX within {credit['onnx_holdout_max_abs_diff']:.1e} of scikit-learn\n"
        f"  house price: holdout MAPE {house['holdout_mape']:.1%}, "
        f"ONNX within ${house['onnx_holdout_max_abs_diff']:.2f} of scikit-learn"
    )


if __name__ == "__main__":
    main()
