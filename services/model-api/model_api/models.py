"""The two trained models: where their artifacts live, how they are loaded and checked, how they predict."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

CREDIT_ARTIFACT = "credit_risk.joblib"
HOUSE_ARTIFACT = "house_price.joblib"
METADATA = "metadata.json"
RETRAIN_HINT = "retrain with `python -m model_api.train` (or `make train`)"


class ModelArtifactError(RuntimeError):
    """The artifacts are missing, unreadable, or were written by another scikit-learn version."""


@dataclass(frozen=True)
class Models:
    """Loaded, version-checked pipelines, ready to predict."""

    credit: Pipeline
    house: Pipeline
    metadata: dict[str, Any]

    def default_probabilities(self, applicants: list[dict[str, Any]]) -> list[float]:
        """Probability of default for each applicant, in one call to the forest."""
        return self.credit.predict_proba(applicants)[:, 1].tolist()

    def house_prices(self, houses: list[dict[str, Any]]) -> list[float]:
        return self.house.predict(houses).tolist()


def read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / METADATA
    if not path.is_file():
        raise ModelArtifactError(f"no model metadata at {path}: {RETRAIN_HINT}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelArtifactError(f"unreadable model metadata at {path} ({error}): {RETRAIN_HINT}") from error


def check_artifacts(model_dir: Path) -> dict[str, Any]:
    """Check that the artifacts are complete and were written by the installed scikit-learn; return metadata.

    Unpickling a model across scikit-learn versions can fail, or worse, silently predict differently,
    so the version recorded at training must equal the one installed. Cheap (no unpickling), so the
    gunicorn master runs it before forking, and a bad artifact stops the start with one clear message.
    """
    metadata = read_metadata(model_dir)
    installed = version("scikit-learn")
    trained_with = metadata.get("sklearn_version")
    if trained_with != installed:
        raise ModelArtifactError(
            f"the models in {model_dir} were trained with scikit-learn {trained_with}, "
            f"but this is scikit-learn {installed}: {RETRAIN_HINT}"
        )
    for name in (CREDIT_ARTIFACT, HOUSE_ARTIFACT):
        if not (model_dir / name).is_file():
            raise ModelArtifactError(f"missing model artifact {model_dir / name}: {RETRAIN_HINT}")
    return metadata


def load_models(model_dir: Path) -> Models:
    """Load both pipelines after `check_artifacts` has accepted them."""
    metadata = check_artifacts(model_dir)
    return Models(
        credit=joblib.load(model_dir / CREDIT_ARTIFACT),
        house=joblib.load(model_dir / HOUSE_ARTIFACT),
        metadata=metadata,
    )
