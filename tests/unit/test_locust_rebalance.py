"""lab_locust.rebalance: which workers a running swarm left without users, read from the master's view of them."""

from __future__ import annotations

from types import SimpleNamespace

from locust.runners import STATE_RUNNING, STATE_SPAWNING

from lab_locust.rebalance import idle_workers


def master(users: int, counts: list[int], state: str = STATE_RUNNING, completed: bool = True) -> SimpleNamespace:
    workers = [SimpleNamespace(user_count=count) for count in counts]
    clients = SimpleNamespace(ready=[w for w in workers if w.user_count == 0],
                              running=[w for w in workers if w.user_count], spawning=[])  # fmt: skip
    return SimpleNamespace(state=state, spawning_completed=completed, target_user_count=users, clients=clients)


def test_a_worker_that_joined_during_a_rebalance_and_got_no_users_is_idle():
    runner = master(12, [4, 4, 4, 0])
    assert idle_workers(runner) == [runner.clients.ready[0]]


def test_every_worker_with_users_leaves_none_idle():
    assert idle_workers(master(12, [3, 3, 3, 3])) == []


def test_fewer_users_than_workers_leave_a_worker_rightly_idle():
    assert idle_workers(master(3, [1, 1, 1, 0])) == []


def test_nothing_is_idle_while_the_master_still_spawns_or_the_spawning_has_not_completed():
    assert idle_workers(master(12, [6, 6, 0], state=STATE_SPAWNING)) == []
    assert idle_workers(master(12, [6, 6, 0], completed=False)) == []
