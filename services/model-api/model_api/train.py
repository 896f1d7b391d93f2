"""Train both models on the synthetic data and write their artifacts: `python -m model_api.train [--out DIR]`."""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.metrics import mean_absolute_percentage_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from model_api import __version__, data
from model_api.artifacts import CREDIT_ARTIFACT, HOUSE_ARTIFACT, METADATA
from model_api.settings import load_settings

# About 200 trees of depth about 10: one prediction costs several milliseconds of CPU, whatever the batch size
# up to a few dozen rows. That is the lab's CPU-bound workload, and why batching pays.
CREDIT_FOREST = {"n_estimators": 200, "max_depth": 10, "min_samples_leaf": 3}
HOUSE_FOREST = {"n_estimators": 20, "max_depth": 8}
MODEL_SEED = 1


def _fit(forest: BaseEstimator, rows: list[dict], target: np.ndarray) -> tuple[Pipeline, list[dict], np.ndarray]:
    """Fit DictVectorizer + `forest` on 80% of the rows; return the pipeline and the 20% held out."""
    x_train, x_test, y_train, y_test = train_test_split(rows, target, test_size=0.2, random_state=MODEL_SEED)
    pipeline = Pipeline([("features", DictVectorizer(sparse=False)), ("forest", forest)])
    return pipeline.fit(x_train, y_train), x_test, y_test


def train(out: Path, seed: int = data.DATA_SEED) -> dict:
    """Train, evaluate on a holdout, write both artifacts and the metadata; return the metadata."""
    out.mkdir(parents=True, exist_ok=True)
    credit, x_test, y_test = _fit(
        RandomForestClassifier(**CREDIT_FOREST, random_state=MODEL_SEED, n_jobs=1), *data.credit_dataset(seed=seed)
    )
    credit_auc = roc_auc_score(y_test, credit.predict_proba(x_test)[:, 1])
    house, x_test, y_test = _fit(
        RandomForestRegressor(**HOUSE_FOREST, random_state=MODEL_SEED, n_jobs=1), *data.house_dataset(seed=seed)
    )
    house_mape = mean_absolute_percentage_error(y_test, house.predict(x_test))

    # Write the metadata last: its presence says the artifacts beside it are complete.
    (out / METADATA).unlink(missing_ok=True)
    joblib.dump(credit, out / CREDIT_ARTIFACT)
    joblib.dump(house, out / HOUSE_ARTIFACT)
    metadata = {
        "model_api_version": __version__,
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        "data_seed": seed,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "credit_risk": {"model": "DictVectorizer + RandomForestClassifier", **CREDIT_FOREST, "holdout_auc": credit_auc},
        "house_price": {"model": "DictVectorizer + RandomForestRegressor", **HOUSE_FOREST, "holdout_mape": house_mape},
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
    print(
        f"trained in {time.perf_counter() - started:.1f}s with scikit-learn {metadata['sklearn_version']} -> {out}\n"
        f"  credit risk: holdout AUC {metadata['credit_risk']['holdout_auc']:.3f}\n"
        f"  house price: holdout MAPE {metadata['house_price']['holdout_mape']:.1%}"
    )


if __name__ == "__main__":
    main()
