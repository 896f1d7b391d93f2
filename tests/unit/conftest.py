from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model_api.app import create_app
from model_api.settings import Settings


@pytest.fixture
def make_client(model_dir: Path) -> Iterator:
    """Build an in-process client for the API with the given settings; started and stopped around the test."""
    clients: list[TestClient] = []

    def make(**settings: object) -> TestClient:
        client = TestClient(create_app(Settings(model_dir=model_dir, **settings)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
