"""Smoke test of the benchmark harness's lmc side (bench/lmc_side.py) on a fake LM.

No DSPy, no model server, no timing assertions: it checks that the harness runs the three
benchmark programs end to end, zero-shot and compiled, and reports the figures run.py reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM

BENCH = Path(__file__).resolve().parents[1] / "bench"
DATA = BENCH.parents[1] / "shared" / "data"


def _reply(request: LMRequest) -> str:
    if "label" in json.dumps(request.to_json()):
        return json.dumps({"label": "card_arrival"})
    return json.dumps({"reasoning": "Add them up.", "answer": "42"})


@pytest.mark.skipif(not (DATA / "gsm8k").is_dir(), reason="shared/data is not on this machine")
def test_lmc_side_runs_every_task_on_two_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import lmc_side

    config: dict[str, Any] = {
        "tasks": ["gsm8k", "banking77", "hotpotqa"],
        "limit": 2,
        "compile": True,
        "overhead_calls": 20,
    }
    result = lmc_side.run_side(config, lm=FakeLM(_reply))

    assert result["overhead_us"] > 0
    assert result["peak_rss_mb"] > 0
    for task in config["tasks"]:
        row = result["tasks"][task]
        assert row["zero_shot"]["n"] == 2
        assert row["zero_shot"]["calls"] == 2
        assert row["zero_shot"]["failed_examples"] == 0
        assert 0.0 <= row["zero_shot"]["metric"] <= 1.0
        assert {"calls", "tokens", "wall_s", "dev", "test"} <= row["compile"].keys()
