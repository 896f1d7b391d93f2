"""The lab's users. Each is a short story: take the next realistic payload, post it, judge the answer.

Payloads come from model_api.data, the code that generated the models' training data, so the load looks
like what the models were trained on; the course's own payload is the first one each user sends, unless the
users draw from a catalog (--catalog-size), whose entries repeat as often as --catalog-skew says.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import gevent
from gevent.pool import Pool

from locust import FastHttpUser, events, task
from model_api import data
from model_api.vocabulary import NO_RESPONSE, SLOWER_THAN_SLO

MAX_IN_FLIGHT_PER_USER = 100  # open workload: beyond this a user drops requests rather than pile them up


def judge(response: Any, slo_ms: float) -> None:
    """Mark a caught response as a failure if it is not a 200, or if it took longer than the SLO."""
    elapsed_ms = response.request_meta["response_time"]
    if response.status_code == 0:  # no answer: the client's error (FastHttpUser's ErrorResponse) says why
        error = getattr(response, "error", None)
        response.failure(f"{NO_RESPONSE}: {error!r}"[:200] if error is not None else NO_RESPONSE)
    elif response.status_code != 200:
        body = (response.text or "")[:200].replace("\n", " ")
        response.failure(f"HTTP {response.status_code}: {body}")
    elif elapsed_ms > slo_ms:
        # Locust's Failures tab has one row per message: the time itself would make one per millisecond.
        response.failure(f"{SLOWER_THAN_SLO} of {slo_ms:.0f} ms")
    else:
        response.success()


class LabUser(FastHttpUser):
    """Posts one kind of payload to one route, closed (wait, then send) or open (send at a fixed pace)."""

    abstract = True
    path = "/"
    # FastHttpUser (geventhttpclient) needs several times less CPU per request than HttpUser (requests),
    # so one worker process can drive the API to saturation.

    def payloads(self) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def on_start(self) -> None:
        self._payloads = self.payloads()
        self._options = self.environment.parsed_options
        self._in_flight = Pool(MAX_IN_FLIGHT_PER_USER)

    def on_stop(self) -> None:
        self._in_flight.kill()  # open workload: requests still in flight end with their user

    def wait_time(self) -> float:
        if self._options.workload == "open":
            return 0.0  # the open loop paces itself
        return random.uniform(self._options.wait_min, self._options.wait_max)  # what locust's between() does

    def post(self) -> None:
        with self.client.post(self.path, json=next(self._payloads), name=self.path, catch_response=True) as r:
            judge(r, self._options.slo_ms)

    @task
    def send(self) -> None:
        if self._options.workload == "closed":
            self.post()
            return
        self.open_loop()

    def open_loop(self) -> None:
        """Send `open_rate` requests per second, on schedule, however long the answers take.

        A closed user waits for each answer before the next request, so a slow server slows the load down and
        the queue it would have faced never forms (coordinated omission). Here requests leave on schedule; each
        waits in the client's connection pool if it must, and that wait counts in its response time.
        """
        interval = 1.0 / self._options.open_rate
        next_send = time.monotonic()
        while True:
            if self._in_flight.full():
                events.request.fire(
                    request_type="POST",
                    name=self.path,
                    response_time=0,
                    response_length=0,
                    exception=RuntimeError(f"dropped: {MAX_IN_FLIGHT_PER_USER} requests of this user in flight"),
                    context={},
                )
            else:
                self._in_flight.spawn(self.post)
            next_send += interval
            gevent.sleep(max(0.0, next_send - time.monotonic()))


class CreditRiskUser(LabUser):
    """An applicant asking for a loan decision."""

    path = "/classify"
    weight = 3

    def payloads(self) -> Iterator[dict[str, Any]]:
        options = self.environment.parsed_options
        return data.applicants(random.getrandbits(32), options.catalog_size, options.catalog_skew)


class HousePriceUser(LabUser):
    """Someone asking what a house is worth."""

    path = "/predict"
    weight = 1

    def payloads(self) -> Iterator[dict[str, Any]]:
        options = self.environment.parsed_options
        return data.houses(random.getrandbits(32), options.catalog_size, options.catalog_skew)


@events.init.add_listener
def _weights_from_options(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is not None:
        CreditRiskUser.weight = options.credit_weight
        HousePriceUser.weight = options.house_weight
