"""The lab's credit-risk model behind BentoML: `POST /classify`, with BentoML's adaptive batching.

An optional extra in a virtualenv of its own (`make bentoml-install`), so that the lab never depends on BentoML;
`make bentoml` serves it on 127.0.0.1:3000. It serves the model the lab trains (LAB_MODEL_DIR, else
services/model-api/artifacts), checked, validated and decided by the lab's own code, so that it answers an
applicant exactly as the lab's `/classify` does and a benchmark compares the servers, not the models.

The body is a JSON list of the lab's applicants, `[{"seniority": 3, ...}]`, and the answer a list of decisions in
the same order: a batchable BentoML API takes a batch from each request and concatenates them into one call.

BentoML's knobs are its arguments: `bentoml serve service:CreditRisk --arg workers=2 --arg max_batch_size=32`.
"""

from __future__ import annotations

import gc

import bentoml
import joblib
from pydantic import BaseModel, Field

from model_api import data
from model_api.artifacts import CREDIT_ARTIFACT, check_artifacts
from model_api.schemas import CreditApplicant, CreditDecision
from model_api.settings import Settings

# BLAS and OpenMP size their thread pools from these when a worker imports numpy: one thread a worker, as the
# lab's gunicorn workers have (LAB_BLAS_THREADS), so that one worker is one core.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class Arguments(BaseModel):
    """BentoML's own knobs, given as `--arg name=value` to `bentoml serve`; the lab's come from its LAB_ variables."""

    # One worker process, like one gunicorn worker: the benchmark compares one core with one core.
    workers: int = Field(1, ge=1)
    # Requests in one model call at most: the lab's own batcher's default (LAB_BATCH_MAX_SIZE), since a forest
    # costs about as much for 64 rows as for 1.
    max_batch_size: int = Field(64, gt=1)
    # Not a wait but a budget: BentoML holds requests back for company only while its running estimate of a batch's
    # cost says the oldest still makes this, and answers 503 to one that cannot. The lab's SLO, 1 s (LOCUST_SLO_MS).
    max_latency_ms: int = Field(1000, gt=0)


ARGUMENTS = bentoml.use_arguments(Arguments)
SETTINGS = Settings()


@bentoml.service(
    workers=ARGUMENTS.workers,
    threads=1,  # the one thread that runs the model: batching, not threads, is what helps a CPU-bound forest
    envs=[{"name": name, "value": str(SETTINGS.blas_threads)} for name in THREAD_VARIABLES],
)
class CreditRisk:
    """Credit risk: the probability that each applicant defaults, and the decision it leads to."""

    def __init__(self) -> None:
        # In each worker, before /readyz says yes: the lab's version check, then its pipeline (DictVectorizer + forest).
        check_artifacts(SETTINGS.model_dir)
        self.pipeline = joblib.load(SETTINGS.model_dir / CREDIT_ARTIFACT)
        # As the lab's workers do: one prediction before serving, so that no request meets a cold model, then the
        # models and modules out of the garbage collector's sight, so that no full collection pauses a request.
        self.pipeline.predict_proba([data.COURSE_APPLICANT])
        gc.collect()
        gc.freeze()

    @bentoml.api(
        route="/classify",
        batchable=True,
        max_batch_size=ARGUMENTS.max_batch_size,
        max_latency_ms=ARGUMENTS.max_latency_ms,
    )
    def classify(self, applicants: list[CreditApplicant], /) -> list[CreditDecision]:
        """One decision per applicant, in order; BentoML has already merged concurrent requests into `applicants`."""
        probabilities = self.pipeline.predict_proba([applicant.model_dump() for applicant in applicants])[:, 1]
        return [
            CreditDecision.of(probability, SETTINGS.approve_below, SETTINGS.decline_from)
            for probability in probabilities.tolist()
        ]
