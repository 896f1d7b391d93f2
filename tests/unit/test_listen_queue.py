"""The accept queue: connections the kernel holds on the API's listening socket that no worker has taken yet."""

from __future__ import annotations

import socket
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from lab.exposition import parse
from model_api.collectors import ServiceCollector, listen_queue

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def tcp_line(slot: int, state: str, rx_queue: int, inode: int) -> str:
    addresses = "0100007F:1F40 00000000:0000"
    return f"   {slot}: {addresses} {state} 00000000:{rx_queue:08X} 00:00000000 00000000  1000  0 {inode} 1\n"


def proc(tmp_path: Path, owned: list[int], tcp: str, tcp6: str = HEADER) -> tuple[Path, Path]:
    net, fds = tmp_path / "net", tmp_path / "fd"
    net.mkdir()
    fds.mkdir()
    (net / "tcp").write_text(tcp)
    (net / "tcp6").write_text(tcp6)
    for number, inode in enumerate(owned):
        (fds / str(number)).symlink_to(f"socket:[{inode}]")
    (fds / "99").symlink_to("/dev/null")
    return net, fds


def test_only_the_listening_sockets_this_process_holds_are_counted(tmp_path):
    tcp = HEADER + tcp_line(0, "0A", 3, 111) + tcp_line(1, "0A", 7, 222) + tcp_line(2, "01", 5, 111)
    net, fds = proc(tmp_path, owned=[111], tcp=tcp, tcp6=HEADER + tcp_line(0, "0A", 2, 333))

    assert listen_queue(net, fds) == 3  # not another process's listener (222), not an established connection


def test_ipv4_and_ipv6_listeners_add_up(tmp_path):
    net, fds = proc(tmp_path, [111, 333], HEADER + tcp_line(0, "0A", 3, 111), HEADER + tcp_line(0, "0A", 2, 333))

    assert listen_queue(net, fds) == 5


def test_a_process_that_listens_on_nothing_has_no_queue_not_an_empty_one(tmp_path):
    net, fds = proc(tmp_path, owned=[444], tcp=HEADER + tcp_line(0, "01", 0, 444))

    assert listen_queue(net, fds) is None


def test_connections_no_one_accepted_are_read_from_this_kernel():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        assert listen_queue() == 3
        listener.accept()[0].close()
        assert listen_queue() == 2
    finally:
        for client in clients:
            client.close()
        listener.close()


def test_the_service_collector_exposes_the_slo_and_leaves_out_an_unknown_queue():
    registry = CollectorRegistry()
    labels = dict.fromkeys(("version", "sklearn_version", "model", "model_runtime", "handler_style", "batching"), "x")
    registry.register(ServiceCollector(labels, 0.25, lambda: None))

    samples = parse(generate_latest(registry).decode())

    assert samples[("lab_slo_seconds", ())] == 0.25
    assert not any(name == "lab_listen_queue_connections" for name, _ in samples)
