"""The accept queue: connections the kernel holds on the API's listening socket that no worker has taken yet."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, generate_latest

from lab.exposition import parse
from model_api.collectors import ServiceCollector, listen_queue


@contextmanager
def listener(family: socket.AddressFamily = socket.AF_INET) -> Iterator[socket.socket]:
    server = socket.socket(family)
    server.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    server.listen(16)
    try:
        yield server
    finally:
        server.close()


def connect(server: socket.socket, count: int) -> list[socket.socket]:
    return [socket.create_connection(server.getsockname()[:2]) for _ in range(count)]


def test_connections_no_one_accepted_are_read_from_this_kernel_and_an_accepted_one_leaves_the_queue():
    with listener() as server:
        clients = connect(server, 3)
        try:
            assert listen_queue() == 3
            accepted, _ = server.accept()  # an established connection this process holds: not a queue
            assert listen_queue() == 2
            accepted.close()
        finally:
            for client in clients:
                client.close()


def test_ipv4_and_ipv6_listeners_add_up():
    with listener() as v4, listener(socket.AF_INET6) as v6:
        clients = connect(v4, 2) + connect(v6, 1)
        try:
            assert listen_queue() == 3
        finally:
            for client in clients:
                client.close()


def test_a_process_that_listens_on_nothing_has_no_queue_not_an_empty_one():
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a socket, but no TCP listener
    try:
        assert listen_queue() is None
    finally:
        udp.close()


def test_the_service_collector_exposes_the_slo_and_leaves_out_an_unknown_queue():
    registry = CollectorRegistry()
    labels = dict.fromkeys(("version", "sklearn_version", "model", "model_runtime", "handler_style", "batching"), "x")
    registry.register(ServiceCollector(labels, 0.25, lambda: None))

    samples = parse(generate_latest(registry).decode())

    assert samples[("lab_slo_seconds", ())] == 0.25
    assert not any(name == "lab_listen_queue_connections" for name, _ in samples)
