"""Shared test setup: no test reads or writes the user's own LM cache or model choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from faultserver import FaultServer


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own `LMC_CACHE_DIR`, so none touches `~/.cache/lmc`."""
    cache = tmp_path / "lmc-cache"
    monkeypatch.setenv("LMC_CACHE_DIR", str(cache))
    monkeypatch.delenv("LMC_LM", raising=False)
    return cache


@pytest.fixture(autouse=True)
def fresh_default_model() -> Iterator[None]:
    """A top-level `lmc.configure(...)` in one test does not become another test's model."""
    from lmc.runtime.context import reset_default

    reset_default()
    yield
    reset_default()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A fault-injecting OpenAI-compatible server on 127.0.0.1 (see tests/faultserver.py): script
    its replies and faults, point `--api-base` (or `api_base=`) at `fault_server.url`, and count
    the requests it got. Closed after the test."""
    from faultserver import FaultServer

    with FaultServer() as server:
        yield server
