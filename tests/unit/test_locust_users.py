"""How the lab's users judge an answer: a non-200 or an answer slower than the SLO is a failure saying why."""

from __future__ import annotations

import pytest

from lab_locust.users import judge


class CaughtResponse:
    """The parts of Locust's catch_response object that judge() uses."""

    def __init__(self, status: int, elapsed_ms: float, text: str = "{}") -> None:
        self.status_code = status
        self.text = text
        self.request_meta = {"response_time": elapsed_ms}
        self.outcome: tuple[str, str | None] | None = None

    def failure(self, message: str) -> None:
        self.outcome = ("failure", message)

    def success(self) -> None:
        self.outcome = ("success", None)


def test_a_fast_200_is_a_success():
    response = CaughtResponse(200, 120)
    judge(response, slo_ms=1000)
    assert response.outcome == ("success", None)


def test_a_200_slower_than_the_slo_is_a_failure_that_says_so():
    response = CaughtResponse(200, 1234.4)
    judge(response, slo_ms=1000)
    assert response.outcome == ("failure", "slower than the SLO of 1000 ms")


def test_slow_answers_share_one_failure_message_so_locust_lists_them_in_one_row():
    slow = [CaughtResponse(200, elapsed) for elapsed in (1001, 1234.4, 5000)]
    for response in slow:
        judge(response, slo_ms=1000)
    assert len({response.outcome for response in slow}) == 1


@pytest.mark.parametrize("status", [422, 500, 503])
def test_a_non_200_is_a_failure_with_the_status_and_the_start_of_the_body(status):
    body = '{"message": "invalid request: age: Input should be greater than or equal to 18"}' + "x" * 500
    response = CaughtResponse(status, 5, body)
    judge(response, slo_ms=1000)

    kind, message = response.outcome
    assert kind == "failure"
    assert message.startswith(f"HTTP {status}: {body[:40]}")
    assert len(message) < 250


def test_no_answer_at_all_is_a_failure_that_says_no_response_and_the_clients_error():
    response = CaughtResponse(0, 3)
    response.error = ConnectionResetError(104, "Connection reset by peer")
    judge(response, slo_ms=1000)

    assert response.outcome == ("failure", "no response: ConnectionResetError(104, 'Connection reset by peer')")
