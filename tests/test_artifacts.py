"""A run's saved adapters and held-out pairs feed `drift gate` and `drift export` directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drift.adapters import load_adapter
from drift.config import compose
from drift.export import main as export_main
from drift.gate import main as gate_main
from drift.run import run
from drift.serving import load as load_served


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("artifacts")
    return run(
        compose(
            [
                "encoder@old_encoder=synthetic_old",
                "encoder@new_encoder=synthetic_new",
                "dataset=synthetic",
                "debug=smoke",
                "logger=none",
                "adapter=procrustes",
                f"paths.results_dir={tmp / 'results'}",
                f"paths.cache_dir={tmp / 'cache'}",
            ]
        )
    )


def test_run_saves_every_adapter_and_the_held_out_pairs(record: dict) -> None:
    artifacts = record["artifacts"]
    assert set(artifacts) == set(record["adapters"]) | {"val_pairs"}
    with np.load(artifacts["val_pairs"], allow_pickle=False) as pairs:
        assert pairs["new"].shape == (record["pairs"]["n_val"], 768)
        assert pairs["old"].shape == (record["pairs"]["n_val"], 384)


def test_gate_and_export_consume_run_artifacts(record: dict, tmp_path: Path) -> None:
    adapter_dir = record["artifacts"]["procrustes"]
    report_path = tmp_path / "gate.json"
    with pytest.raises(SystemExit) as exit_info:
        gate_main(
            [
                "--adapter-dir",
                adapter_dir,
                "--pairs",
                record["artifacts"]["val_pairs"],
                "--threshold",
                "0.5",
                "--n-boot",
                "50",
                "--json",
                str(report_path),
            ]
        )
    report = json.loads(report_path.read_text())["gate"]
    assert exit_info.value.code == (0 if report["decision"].startswith("keep") else 1)

    out = tmp_path / "artifact"
    export_main(
        [
            "--adapter-dir",
            adapter_dir,
            "--out",
            str(out),
            "--old-model",
            "synthetic/old",
            "--new-model",
            "synthetic/new",
            "--metrics",
            str(report_path),
        ]
    )
    with np.load(record["artifacts"]["val_pairs"], allow_pickle=False) as pairs:
        queries = pairs["new"]
    expected = load_adapter(adapter_dir).transform(queries)
    np.testing.assert_allclose(load_served(out).apply(queries), expected, atol=1e-6)
