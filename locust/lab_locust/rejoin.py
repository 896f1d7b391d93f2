"""Workers rejoin a master that restarted, instead of idling until they give up.

A Locust 2.47 master only learns of a worker from its `client_ready` message, sent once at start, and ignores
heartbeats from workers it does not know; a worker quits after 60 s without the master's heartbeat. So a
restarted master would never see the workers that outlived the old one. Here, a worker that has heard no
heartbeat for REANNOUNCE_AFTER seconds announces itself again, as it did at start, and the new master adds it.
(A worker started before its master needs nothing: Locust retries that connection for several minutes.)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.rpc import Message
from locust.runners import WorkerRunner

from locust import __version__, events

REANNOUNCE_AFTER = 10.0  # seconds without a heartbeat; the master answers every heartbeat within a second
log = logging.getLogger(__name__)


@events.init.add_listener
def _watch_master(environment: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return
    last_heard = {"at": time.time()}

    @environment.events.heartbeat_received.add_listener
    def _heard(timestamp: float, **_: Any) -> None:
        last_heard["at"] = timestamp

    def watch() -> None:
        while True:
            gevent.sleep(1.0)
            silent = time.time() - last_heard["at"]
            if silent > REANNOUNCE_AFTER:
                log.warning("no heartbeat from the master for %.0f s: announcing this worker to it again", silent)
                runner.client.send(Message("client_ready", __version__, runner.client_id))
                last_heard["at"] = time.time()

    gevent.spawn(watch)
