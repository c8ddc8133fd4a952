"""The local client's identity: what the cache keys on for a model file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lmc.backends.clients import local


def test_a_model_file_is_hashed_once_and_remembered_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF, not really a model")
    first = local.LocalLM(model).identity
    assert first == f"gguf:tiny.gguf:{hashlib.sha256(b'GGUF, not really a model').hexdigest()[:16]}"

    local._file_identity.cache_clear()

    def no_hashing(*args: object) -> object:
        raise AssertionError("hashed again")

    monkeypatch.setattr(local.hashlib, "sha256", no_hashing)
    assert local.LocalLM(model).identity == first


def test_a_changed_model_file_gets_a_new_identity(tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF one")
    before = local.LocalLM(model).identity
    model.write_bytes(b"GGUF two, longer")
    assert local.LocalLM(model).identity != before


def test_the_embedded_model_is_found_in_its_package() -> None:
    path = local.default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
