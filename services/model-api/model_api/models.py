"""The two trained models: how they are loaded and how they predict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

from model_api.artifacts import CREDIT_ARTIFACT, HOUSE_ARTIFACT, check_artifacts


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


def load_models(model_dir: Path) -> Models:
    """Load both pipelines after `check_artifacts` has accepted them."""
    metadata = check_artifacts(model_dir)
    return Models(
        credit=joblib.load(model_dir / CREDIT_ARTIFACT),
        house=joblib.load(model_dir / HOUSE_ARTIFACT),
        metadata=metadata,
    )
