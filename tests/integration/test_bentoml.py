"""The BentoML service (services/bentoml/) started natively from its own virtualenv, as `make bentoml` runs it: it
answers /classify as the lab's model does in-process, one applicant per request as the course's service does, and
BentoML's adaptive batching groups concurrent requests. The batchable model service behind it, which the benchmarks
serve alone, answers a list of applicants in its order.

Skipped without .venv-bentoml (`make bentoml-install`), unless LAB_REQUIRE_BENTOML=1 makes that a failure."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

import httpx2
import pytest

from lab.bentoml_service import MODEL_SERVICE, classify_body, running_bentoml
from lab.exposition import parse, total
from model_api import data
from model_api.models import load_models
from model_api.schemas import CreditDecision
from model_api.settings import Settings
from tests.support import tools

BATCH_SIZES = "bentoml_service_adaptive_batch_size"  # BentoML's histogram of the requests in each model call
# The service runs with the API's default thresholds: the harness drops any LAB_ knob of this process.
THRESHOLDS = (Settings.model_fields["approve_below"].default, Settings.model_fields["decline_from"].default)


@pytest.fixture(scope="module")
def bentoml_installed() -> None:
    tools.bentoml()


@pytest.fixture(scope="module")
def service(bentoml_installed, tmp_path_factory, model_dir):  # installed first: skip before training the models
    """`make bentoml`'s service: CreditRisk, and the CreditModel it depends on in a process of its own."""
    with running_bentoml(tmp_path_factory.mktemp("bentoml"), model_dir) as running:
        yield running


@pytest.fixture
def model_service(bentoml_installed, tmp_path, model_dir):
    """CreditModel alone, as the benchmarks serve it."""
    with running_bentoml(tmp_path, model_dir, service=MODEL_SERVICE) as running:
        yield running


@pytest.fixture(scope="module")
def lab_answers(model_dir):
    """The lab's answers for applicants, computed in this process with the lab's own loading and decision code."""
    models = load_models(model_dir, "sklearn")

    def answers(applicants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        probabilities = models.default_probabilities(applicants)
        return [CreditDecision.of(probability, *THRESHOLDS).model_dump() for probability in probabilities]

    return answers


def classify(url: str, body: Any) -> Any:
    response = httpx2.post(f"{url}/classify", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def assert_same_answers(answered: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [answer["decision"] for answer in answered] == [answer["decision"] for answer in expected]
    for answer, wanted in zip(answered, expected, strict=True):
        assert answer["default_probability"] == pytest.approx(wanted["default_probability"], abs=1e-9)


def batch_sizes(service) -> tuple[float, float]:
    """Model calls so far and the requests they answered, from BentoML's own /metrics."""
    samples = parse(service.metrics())
    return total(samples, f"{BATCH_SIZES}_count"), total(samples, f"{BATCH_SIZES}_sum")


def test_classify_answers_each_applicant_with_the_labs_probability_and_decision(service, lab_answers):
    applicants = list(islice(data.applicants(seed=7), 6))  # the course's applicant, then five drawn ones

    answered = [classify(service.url, applicant) for applicant in applicants]  # the course's body: one applicant

    assert answered[0] == {"default_probability": 0.3548, "decision": "MAYBE"}  # as the README's curl shows
    assert_same_answers(answered, lab_answers(applicants))


def test_the_model_service_alone_answers_a_list_of_applicants_in_its_order(model_service, lab_answers):
    applicants = list(islice(data.applicants(seed=8), 1, 5))

    answered = classify(model_service.url, applicants)
    one = classify(model_service.url, classify_body(applicants[0]))

    assert_same_answers(answered, lab_answers(applicants))
    assert one == answered[:1]

    assert_same_answers(answered, lab_answers(applicants))


def test_32_concurrent_requests_are_all_answered_correctly_and_batched_more_than_one_to_a_model_call(
    service, lab_answers
):
    applicants = list(islice(data.applicants(seed=9), 1, 33))
    calls_before, requests_before = batch_sizes(service)

    with ThreadPoolExecutor(max_workers=len(applicants)) as pool:
        answered = list(pool.map(lambda applicant: classify(service.url, applicant), applicants))

    calls_after, requests_after = batch_sizes(service)
    assert_same_answers(answered, lab_answers(applicants))
    assert requests_after - requests_before == len(applicants)
    assert calls_after - calls_before < len(applicants), "every request had a model call of its own: no batching"
