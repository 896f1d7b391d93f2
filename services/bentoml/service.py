"""The lab's credit-risk model behind BentoML, in the course's shape: `POST /classify` takes one applicant and
answers one decision, and BentoML's adaptive batching groups concurrent requests into one model call.

An optional extra in a virtualenv of its own (`make bentoml-install`), so that the lab never depends on BentoML;
`make bentoml` serves it on 127.0.0.1:3000. It serves the model the lab trains (LAB_MODEL_DIR, else
services/model-api/artifacts), checked, validated and decided by the lab's own code, so that it answers an
applicant exactly as the lab's `/classify` does and a benchmark compares the servers, not the models.

Two services, as BentoML 1.2+ batches one-object requests (the course's runner did the same in BentoML 1.0):
`CreditRisk`, the API a client calls (and the course's locustfile, unmodified), hands each applicant to
`CreditModel`, a batchable API whose body is a JSON list of applicants and whose answer is the list of their
decisions, run in a worker process of its own; BentoML merges the concurrent calls into one list. The benchmarks
serve `CreditModel` alone (`bentoml serve service:CreditModel`), a list of one applicant per request: the batching
without the hop between the two processes.

BentoML's knobs are its arguments: `bentoml serve service:CreditRisk --arg workers=2 --arg max_batch_size=32`.
"""

from __future__ import annotations

import gc

import aiohttp
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

    # The model's worker processes (CreditModel's), each a core: one, like one gunicorn worker, so that the
    # benchmark compares one core with one core.
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
class CreditModel:
    """The model, batched: the probability that each applicant defaults, and the decision it leads to."""

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


@bentoml.service(workers=1)  # an async handler that only waits for the model's answer: one process is plenty
class CreditRisk:
    """Credit risk, as the course serves it: one applicant in, one decision out."""

    model = bentoml.depends(CreditModel)

    @bentoml.api(route="/classify")
    async def classify(self, applicant: CreditApplicant, /) -> CreditDecision:
        """The applicant's decision, from a model call BentoML shares with the requests that arrived with it."""
        try:
            (decision,) = await self.model.to_async.classify([applicant])
        except aiohttp.ClientConnectionError:
            # Once more, on a new connection: BentoML's client keeps idle connections to CreditModel for 15 s, its
            # server closes them after 5, and a request sent on one just closed fails (BentoML#4971; seen here after
            # a 10 s pause). A prediction can be asked twice; a client should never see that 500.
            (decision,) = await self.model.to_async.classify([applicant])
        return decision
