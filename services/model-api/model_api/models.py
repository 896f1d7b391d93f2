"""The two trained models: how they are loaded and how they predict, with scikit-learn or with ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from model_api.artifacts import CREDIT_ARTIFACT, CREDIT_ONNX, HOUSE_ARTIFACT, HOUSE_ONNX, check_artifacts
from model_api.settings import ModelRuntime

Predict = Callable[[list[dict[str, Any]]], np.ndarray]  # rows in, one number per row out, in order

# The names in the ONNX graphs: the input train.py gives the forest, and the output skl2onnx writes with the
# column to read (a classifier without ZipMap: "probabilities", whose column 1 is the probability of default;
# a regressor: "variable", one column).
ONNX_INPUT = "X"
CREDIT_OUTPUT = ("probabilities", 1)
HOUSE_OUTPUT = ("variable", 0)


def onnx_session(model: Path | bytes) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session that computes on the calling thread alone.

    One intra-op and one inter-op thread: each gunicorn worker is one process with its own session, so any more
    would have the workers fight over the cores, as LAB_BLAS_THREADS=1 prevents for scikit-learn's pools.
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    model_source = str(model) if isinstance(model, Path) else model
    return onnxruntime.InferenceSession(model_source, options, providers=["CPUExecutionProvider"])


class Columns:
    """What a fitted DictVectorizer's `transform` makes of the API's rows, without its sparse matrix.

    The API's rows are flat: every value a number or a string. DictVectorizer puts a number in the column named
    after its key and a string as a 1 in the column `key=value`, and drops what it did not see in training; so
    does this, from the vocabulary the vectorizer fitted, straight into a dense array. It is exact (a unit test
    compares the two on generated and unseen rows) and several times cheaper per request: the vectorizer builds a
    scipy sparse matrix for every call, then makes it dense.
    """

    def __init__(self, vectorizer: DictVectorizer, dtype: type[np.floating] = np.float64) -> None:
        self.vocabulary: dict[str, int] = {str(name): int(j) for name, j in vectorizer.vocabulary_.items()}
        self.separator: str = vectorizer.separator
        self.width = len(vectorizer.feature_names_)
        self.dtype = dtype

    def __call__(self, rows: list[dict[str, Any]]) -> np.ndarray:
        x = np.zeros((len(rows), self.width), dtype=self.dtype)
        vocabulary, separator = self.vocabulary, self.separator
        for i, row in enumerate(rows):
            for key, value in row.items():
                if isinstance(value, str):
                    j = vocabulary.get(f"{key}{separator}{value}")
                    if j is not None:
                        x[i, j] = 1.0
                else:
                    j = vocabulary.get(key)
                    if j is not None:
                        x[i, j] = value
        return x


@dataclass(frozen=True)
class OnnxForest:
    """A forest run by ONNX Runtime behind the columns of the DictVectorizer that scikit-learn fitted with it.

    The forest is converted with float32 inputs: scikit-learn's trees compare float32 features too, so both
    runtimes take the same branches; only the sums of the leaves differ, in the last float32 digits.
    """

    features: Columns
    session: onnxruntime.InferenceSession
    output: str
    column: int

    def __call__(self, rows: list[dict[str, Any]]) -> np.ndarray:
        return self.session.run([self.output], {ONNX_INPUT: self.features(rows)})[0][:, self.column]


def onnx_forest(pipeline: Pipeline, model: Path | bytes, output: str, column: int) -> OnnxForest:
    """The ONNX graph of the pipeline's forest behind its vectorizer's columns, in float32 as the graph takes."""
    return OnnxForest(Columns(pipeline.named_steps["features"], np.float32), onnx_session(model), output, column)


def _sklearn(pipeline: Pipeline, probability: bool) -> Predict:
    """The pipeline's forest behind its vectorizer's columns: the same predictions as the pipeline."""
    features, forest = Columns(pipeline.named_steps["features"]), pipeline.named_steps["forest"]
    if probability:
        return lambda rows: forest.predict_proba(features(rows))[:, 1]
    return lambda rows: forest.predict(features(rows))


@dataclass(frozen=True)
class Models:
    """Loaded, version-checked models, ready to predict with the runtime they were loaded for."""

    credit: Predict
    house: Predict
    metadata: dict[str, Any]
    model_runtime: ModelRuntime

    def default_probabilities(self, applicants: list[dict[str, Any]]) -> list[float]:
        """Probability of default for each applicant, in one call to the forest."""
        return self.credit(applicants).tolist()

    def house_prices(self, houses: list[dict[str, Any]]) -> list[float]:
        return self.house(houses).tolist()


def load_models(model_dir: Path, model_runtime: ModelRuntime) -> Models:
    """Load both models for `model_runtime` after `check_artifacts` has accepted the folder."""
    metadata = check_artifacts(model_dir)
    credit: Pipeline = joblib.load(model_dir / CREDIT_ARTIFACT)
    house: Pipeline = joblib.load(model_dir / HOUSE_ARTIFACT)
    if model_runtime == "onnx":
        # Only the DictVectorizers are kept: the scikit-learn forests are dropped with their pipelines.
        return Models(
            credit=onnx_forest(credit, model_dir / CREDIT_ONNX, *CREDIT_OUTPUT),
            house=onnx_forest(house, model_dir / HOUSE_ONNX, *HOUSE_OUTPUT),
            metadata=metadata,
            model_runtime=model_runtime,
        )
    return Models(
        credit=_sklearn(credit, probability=True),
        house=_sklearn(house, probability=False),
        metadata=metadata,
        model_runtime=model_runtime,
    )
