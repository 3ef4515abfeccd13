from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from forgetd.api.app import create_app
from forgetd.settings import Settings
from tests.conftest import API_TOKEN


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        yield client
