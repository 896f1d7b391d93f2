"""The soak's verdicts from its samples: memory flat within 10% per worker, no errors, the P99 drift."""

from __future__ import annotations

from types import SimpleNamespace

from experiments.soak import Sample, Soak, locust_failures, markdown

MIB = 2**20


def soak(rss: list[dict[str, float]], p99: list[float], errors: float = 0, slow: float = 0) -> Soak:
    samples = [Sample(30.0 * i, {pid: v * MIB for pid, v in r.items()}, s, 50.0, 0, 0) for i, (r, s) in
               enumerate(zip(rss, p99, strict=True))]  # fmt: skip
    samples[-1].errors, samples[-1].slow = errors, slow
    return Soak("baseline", 50.0, 30, samples)


def test_memory_that_grew_under_10_percent_in_every_worker_is_flat():
    run = soak([{"1": 150, "2": 160}] * 9 + [{"1": 160, "2": 170}], [0.2] * 10)
    assert run.rss_growth() == {"1": 160 / 150 - 1, "2": 170 / 160 - 1}
    assert run.verdicts() == {"memory flat": True, "no errors": True}


def test_one_worker_that_grew_more_than_10_percent_is_not_flat_and_an_error_answer_is_an_error():
    run = soak([{"1": 150, "2": 150}] * 9 + [{"1": 150, "2": 170}], [0.2] * 10, errors=3)
    assert run.verdicts() == {"memory flat": False, "no errors": False}


def test_answers_slower_than_the_slo_are_reported_but_are_not_errors():
    run = soak([{"1": 150}] * 10, [0.2] * 10, slow=40)
    assert run.verdicts()["no errors"] is True
    assert "Errors: 0. Answers slower than the SLO: 40." in markdown(run)


def test_the_drift_compares_the_median_p99_of_the_last_fifth_with_the_first():
    run = soak([{"1": 150}] * 10, [0.1, 0.3] + [0.2] * 6 + [0.4, 0.4])
    assert run.p99_drift() == 0.4 / 0.2


def test_a_worker_replaced_during_the_soak_is_left_out_of_the_growth():
    run = soak([{"1": 150}] * 5 + [{"3": 400}] * 5, [0.2] * 10)
    assert run.rss_growth() == {}
    assert run.verdicts()["memory flat"] is False  # nothing to call flat: the worker that started is gone


def test_the_report_names_each_worker_its_growth_and_the_verdicts():
    text = markdown(soak([{"1": 150}] * 9 + [{"1": 153}], [0.2] * 10))
    assert "| 1 | 150 | 153 | +2.0% |" in text
    assert "memory flat: yes; no errors: yes" in text


def test_locust_failures_are_split_into_errors_and_answers_slower_than_the_slo():
    """As Locust's web API lists them: the lab's users' message for a slow answer, and anything else."""
    stats = {"errors": [
        {"name": "/classify", "error": "CatchResponseError('slower than the SLO of 1000 ms')", "occurrences": 7},
        {"name": "/predict", "error": "CatchResponseError('slower than the SLO of 1000 ms')", "occurrences": 2},
        {"name": "/classify", "error": "CatchResponseError('HTTP 500: boom')", "occurrences": 1},
        {"name": "/classify", "error": "ConnectionResetError(104, 'Connection reset by peer')", "occurrences": 3},
    ]}  # fmt: skip
    lab = SimpleNamespace(locust_stats=lambda: stats)
    assert locust_failures(lab) == (4, 9)
