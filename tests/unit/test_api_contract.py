"""The API's contract with clients: the course payloads are answered, every client mistake is a 4xx naming it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_api import data
from model_api.app import create_app
from model_api.settings import Settings
from model_api.vocabulary import MODEL_RUNTIMES

APPLICANT = data.COURSE_APPLICANT


def with_field(**changes: object) -> dict:
    return {**APPLICANT, **changes}


def without(field: str) -> dict:
    return {k: v for k, v in APPLICANT.items() if k != field}


def test_the_course_payload_is_answered_with_a_probability_and_a_decision(client):
    response = client.post("/classify", json=APPLICANT)

    assert response.status_code == 200
    body = response.json()
    assert 0.0 <= body["default_probability"] <= 1.0
    assert body["decision"] in {"APPROVED", "MAYBE", "DECLINED"}


def test_the_exact_course_body_bytes_are_accepted(client):
    raw = (
        '{"seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no", '
        '"job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0, "amount": 800, '
        '"price": 1000}'
    )
    response = client.post("/classify", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


def test_the_course_house_is_priced(client):
    response = client.post("/predict", json={"sqft": 1500, "bedrooms": 3, "location": "NY"})

    assert response.status_code == 200
    assert response.json()["price"] > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("home", h) for h in data.HOME]
    + [("marital", m) for m in data.MARITAL]
    + [("records", r) for r in data.RECORDS]
    + [("job", j) for j in data.JOB],
)
def test_every_category_of_the_dataset_is_accepted(client, field, value):
    assert client.post("/classify", json=with_field(**{field: value})).status_code == 200


def test_numbers_may_be_ints_or_floats(client):
    assert client.post("/classify", json=with_field(seniority=3.5, amount=800.0, income=120)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (with_field(age="twenty"), "age", "valid number"),
        (with_field(age=True), "age", "valid number"),
        (with_field(age="26"), "age", "valid number"),
        (with_field(home=3), "home", "'rent'"),
        (without("income"), "income", "Field required"),
        (with_field(home="castle"), "home", "'rent', 'owner'"),
        (with_field(job="astronaut"), "job", "'freelance'"),
        (with_field(age=5), "age", "greater than or equal to 18"),
        (with_field(age=400), "age", "less than or equal to 100"),
        (with_field(amount=-1), "amount", "greater than or equal to 0"),
        (with_field(income=1e300), "income", "less than or equal to"),
        (with_field(senority=3), "senority", "Extra inputs are not permitted"),
        ([APPLICANT], "body", "JSON object"),
        ("just a string", "body", "JSON object"),
        (None, "body", "JSON object"),
    ],
)
def test_a_bad_applicant_gets_422_naming_the_field_and_the_reason(client, body, field, reason):
    response = client.post("/classify", content=json.dumps(body), headers={"content-type": "application/json"})

    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["field"] == field and reason in p["reason"] for p in problems), problems
    assert field in response.json()["message"]


@pytest.mark.parametrize("raw", ["{bad json", '{"age": 26,}', "", "NaN", '{"age": NaN}'])
def test_malformed_json_gets_422_saying_so(client, raw):
    response = client.post("/classify", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert any(p["field"] in {"body", "age"} for p in response.json()["detail"])


def test_non_finite_numbers_are_refused(client):
    raw = json.dumps(with_field(income=float("inf")))  # Python writes Infinity, which json.loads reads back
    response = client.post("/classify", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0] == {
        "field": "income",
        "reason": "Input should be a finite number",
        "type": "finite_number",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sqft": 100, "bedrooms": 3, "location": "NY"}, "sqft"),
        ({"sqft": 1500, "bedrooms": 0, "location": "NY"}, "bedrooms"),
        ({"sqft": 1500, "bedrooms": 2.5, "location": "NY"}, "bedrooms"),
        ({"sqft": 1500, "bedrooms": 3, "location": "Atlantis"}, "location"),
        ({"sqft": 1500, "bedrooms": 3}, "location"),
    ],
)
def test_a_bad_house_gets_422_naming_the_field(client, body, field):
    response = client.post("/predict", json=body)

    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == [field]


def test_a_whole_number_of_bedrooms_may_be_written_as_a_float(client):
    assert client.post("/predict", json={"sqft": 1500, "bedrooms": 3.0, "location": "NY"}).status_code == 200
    assert client.post("/predict", json={"sqft": 1500, "bedrooms": "3", "location": "NY"}).status_code == 422
    assert client.post("/predict", json={"sqft": 1500, "bedrooms": True, "location": "NY"}).status_code == 422


def test_a_body_over_64_kib_gets_413(client):
    response = client.post("/classify", content=b"x" * (64 * 1024 + 1), headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert "65536 bytes" in response.json()["message"]


def test_a_streamed_body_over_64_kib_gets_413_even_without_a_length(client):
    def chunks():
        for _ in range(10):
            yield b" " * 8192

    response = client.post("/classify", content=chunks(), headers={"content-type": "application/json"})

    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413


def test_a_body_just_under_the_limit_is_read_and_validated(client):
    padded = json.dumps(APPLICANT).ljust(64 * 1024 - 1)  # trailing spaces are valid JSON

    assert client.post("/classify", content=padded, headers={"content-type": "application/json"}).status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=6),
    max_leaves=20,
)
field_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), st.sampled_from(data.HOME + data.JOB)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | st.fixed_dictionaries(dict.fromkeys(APPLICANT, field_values)))
def test_no_body_whatever_its_shape_gets_a_server_error(client, body):
    response = client.post("/classify", content=json.dumps(body), headers={"content-type": "application/json"})

    assert response.status_code in (200, 422), response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_no_bytes_whatever_they_are_get_a_server_error(client, raw):
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})

    assert response.status_code in (200, 422), response.text


# FastAPI reads a `+json` content type as JSON too; the model routes' one-step parse takes only application/json,
# so the same body under both is the fast path against FastAPI's own, side by side.
FASTAPI_OWN_PATH = {"content-type": "application/problem+json"}
applicant_variants = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(APPLICANT, field_values | st.sampled_from(list(APPLICANT.values()))),
        "extra": field_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=applicant_variants | json_values | st.just(APPLICANT), route=st.sampled_from(["/classify", "/predict"]))
def test_the_one_step_parse_answers_every_body_exactly_as_fastapis_own_path(client, body, route):
    raw = json.dumps(body)

    fast = client.post(route, content=raw, headers={"content-type": "application/json"})
    own = client.post(route, content=raw, headers=FASTAPI_OWN_PATH)

    assert (fast.status_code, fast.json()) == (own.status_code, own.json())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=120) | st.just(json.dumps(data.COURSE_HOUSE).encode()))
def test_the_one_step_parse_answers_any_bytes_exactly_as_fastapis_own_path(client, raw):
    fast = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    own = client.post("/predict", content=raw, headers=FASTAPI_OWN_PATH)

    assert (fast.status_code, fast.json()) == (own.status_code, own.json())


def test_the_decision_follows_the_configured_thresholds(make_client):
    strict = make_client(approve_below=0.01, decline_from=0.02)
    lenient = make_client(approve_below=0.98, decline_from=0.99)

    assert strict.post("/classify", json=APPLICANT).json()["decision"] == "DECLINED"
    assert lenient.post("/classify", json=APPLICANT).json()["decision"] == "APPROVED"


def test_openapi_documents_both_models_with_the_course_example(client):
    spec = client.get("/openapi.json").json()

    assert {"/classify", "/predict", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    applicant = spec["components"]["schemas"]["CreditApplicant"]
    assert applicant["examples"] == [APPLICANT]
    assert applicant["properties"]["home"]["enum"] == list(data.HOME)


def test_the_docs_page_needs_no_internet(client):
    page = client.get("/docs")

    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static-offline-docs/{asset}").status_code == 200


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_readiness_says_what_one_prediction_of_each_model_costs_on_this_machine(client):
    cost = client.get("/readyz").json()["model_ms"]
    assert set(cost) == {"/classify", "/predict"}
    assert all(0 < ms < 10_000 for ms in cost.values()), cost


@pytest.mark.parametrize("model_runtime", MODEL_RUNTIMES)
def test_readiness_names_the_runtime_that_serves_the_models(make_client, model_runtime):
    client = make_client(model_runtime=model_runtime)

    ready = client.get("/readyz").json()
    answer = client.post("/classify", json=APPLICANT)

    assert ready["model_runtime"] == model_runtime
    assert set(ready["model_ms"]) == {"/classify", "/predict"}
    assert answer.status_code == 200
    assert 0 <= answer.json()["default_probability"] <= 1


def test_readiness_is_503_until_the_models_are_loaded_and_warm(model_dir):
    """Before its startup (loading and warming the models) has run, the app is alive but not ready."""
    app = create_app(Settings(model_dir=model_dir))
    cold = TestClient(app, raise_server_exceptions=False)  # not entered: the lifespan has not run
    assert cold.get("/healthz").status_code == 200
    answer = cold.get("/readyz")
    assert answer.status_code == 503
    assert "not loaded and warmed up" in answer.text
    with TestClient(app) as warm:
        assert warm.get("/readyz").status_code == 200
