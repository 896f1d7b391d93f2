"""Workers that join a running swarm get their share of its users, however close together they arrive.

Locust 2.47's master rebalances the users of a running swarm (--enable-rebalancing) when a worker reports ready,
but only once the last spawning has completed: a worker that reports while the rebalance for another is under way
is added and given nothing (MasterRunner's "client_ready" in locust/runners.py). Scaling from 2 workers to 4 does
that when the two new ones join a moment apart: one idles at 0 users while the others carry the load, which a
learner reads as "more workers changed nothing". Here, each time a spawning completes on the master, a worker left
idle in a running swarm with users enough for every worker starts one more rebalance.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.runners import STATE_RUNNING, MasterRunner

from locust import events

SETTLE_SECONDS = 1.0  # after spawning_complete fires, the master marks the spawning completed
log = logging.getLogger(__name__)


def idle_workers(runner: MasterRunner) -> list[Any]:
    """Connected workers with no user while the swarm runs users enough for each of them; none otherwise."""
    if runner.state != STATE_RUNNING or not runner.spawning_completed:
        return []
    workers = [*runner.clients.ready, *runner.clients.spawning, *runner.clients.running]
    if runner.target_user_count < len(workers):
        return []  # fewer users than workers: some worker is rightly idle
    return [worker for worker in workers if worker.user_count == 0]


def rebalance_if_idle(runner: MasterRunner) -> None:
    idle = idle_workers(runner)
    if idle:
        log.info("%d worker(s) joined during a rebalance and got no users: rebalancing again", len(idle))
        runner.start(runner.target_user_count, runner.spawn_rate)


@events.init.add_listener
def _watch_spawning(environment: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or not runner.rebalancing_enabled():
        return

    @environment.events.spawning_complete.add_listener
    def _spawned(**_: Any) -> None:
        gevent.spawn_later(SETTLE_SECONDS, rebalance_if_idle, runner)
