"""Shared test setup: no pacing in the offline model, a private AGENTCAST_HOME per test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTCAST_OFFLINE_DELAY", "0")


@pytest.fixture
def anyio_backend():
    return "asyncio"
