"""Where the trained artifacts live and whether they may be loaded: checks that import no numpy or scikit-learn.

Light on purpose: the gunicorn master runs these checks before forking, and must not load numpy or BLAS,
whose thread pools the workers size from LAB_BLAS_THREADS when they import them.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

CREDIT_ARTIFACT = "credit_risk.joblib"
HOUSE_ARTIFACT = "house_price.joblib"
# The same two forests converted to ONNX (LAB_MODEL_RUNTIME=onnx); the DictVectorizer in front of each stays in
# the .joblib pipeline, and both runtimes take their features from its vocabulary (models.Columns), so that both
# turn a request into the same features.
CREDIT_ONNX = "credit_risk.onnx"
HOUSE_ONNX = "house_price.onnx"
METADATA = "metadata.json"
RETRAIN_HINT = "retrain with `python -m model_api.train` (or `make train`)"


class ModelArtifactError(RuntimeError):
    """The artifacts are missing, unreadable, or were written by another scikit-learn version."""


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
    # Every file, whichever runtime serves: training writes them all, so a folder without the .onnx files is
    # from before they existed, and retraining is the answer either way.
    for name in (CREDIT_ARTIFACT, HOUSE_ARTIFACT, CREDIT_ONNX, HOUSE_ONNX):
        if not (model_dir / name).is_file():
            raise ModelArtifactError(f"missing model artifact {model_dir / name}: {RETRAIN_HINT}")
    return metadata
