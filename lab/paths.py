"""Where the lab's parts are in the repository."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API_DIR = REPO / "services" / "model-api"
LOCUST_DIR = REPO / "locust"
SCENARIOS_DIR = REPO / "scenarios"
RULES_DIR = REPO / "prometheus" / "rules"
MODEL_DIR = API_DIR / "artifacts"  # where `make train` writes the models
BENTOML_DIR = REPO / "services" / "bentoml"
BENTOML_VENV = REPO / ".venv-bentoml"  # the BentoML service's own virtualenv (`make bentoml-install`)
BIN = Path(sys.executable).parent  # the virtualenv's programs: gunicorn, locust
