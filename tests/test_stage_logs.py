"""Stage logs: every timed section logs its start and its seconds; the MLP logs its epochs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from drift.core.timing import Timings


def test_a_timed_stage_logs_its_start_and_its_seconds(caplog) -> None:
    timings = Timings()
    with caplog.at_level(logging.INFO, logger="drift.timing"):
        with timings("index/old"):
            pass
        with pytest.raises(ValueError), timings("fit/mlp"):
            raise ValueError("boom")
    lines = [r.getMessage() for r in caplog.records if r.name == "drift.timing"]
    assert lines[0] == "index/old ..."
    assert lines[1].startswith("index/old: ") and lines[1].endswith(" s")
    assert lines[3].startswith("fit/mlp: ") and lines[3].endswith(" s (failed)")
    assert set(timings) == {"index/old", "fit/mlp"}  # a failed stage's time still counts


def test_the_residual_mlp_logs_each_epoch(caplog) -> None:
    pytest.importorskip("torch")
    from drift.adapters import build_adapter

    rng = np.random.default_rng(0)
    x_new = rng.standard_normal((200, 8)).astype(np.float32)
    x_old = np.tanh(x_new @ rng.standard_normal((8, 6))).astype(np.float32)
    adapter = build_adapter("residual_mlp", hidden=16, max_epochs=3, patience=5)
    with caplog.at_level(logging.INFO, logger="drift.adapters.residual_mlp"):
        adapter.fit(x_new, x_old, seed=0)
    epochs = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert len(epochs) == adapter.fit_info["epochs_run"] == 3
    assert epochs[0].startswith("residual_mlp epoch 1/3: train loss ")
