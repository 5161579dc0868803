"""A run's saved adapters and held-out pairs feed `drift gate` and `drift export` directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drift.adapters import load_adapter
from drift.cli.config import compose
from drift.cli.export import main as export_main
from drift.cli.gate import main as gate_main
from drift.core import files
from drift.core.records import result_path
from drift.migration.gate import EXIT_STATUS
from drift.run import run
from drift.serving.runtime import load as load_served


def synthetic_run(tmp: Path, *overrides: str) -> dict:
    return run(
        compose(
            [
                "encoder@old_encoder=synthetic_old",
                "encoder@new_encoder=synthetic_new",
                "dataset=synthetic",
                "debug=smoke",
                "logger=none",
                f"paths.results_dir={tmp / 'results'}",
                f"paths.cache_dir={tmp / 'cache'}",
                *overrides,
            ]
        )
    )


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    return synthetic_run(tmp_path_factory.mktemp("artifacts"), "adapter=procrustes")


def test_run_saves_every_adapter_and_the_held_out_pairs(record: dict) -> None:
    artifacts = record["artifacts"]
    assert set(artifacts) == set(record["adapters"]) | {"gate_pairs"}
    with np.load(artifacts["gate_pairs"], allow_pickle=False) as pairs:
        # no gate split (the paper's 80/20): the validation pairs, which Procrustes never uses
        assert pairs["new"].shape == (record["pairs"]["n_val"], 768)
        assert pairs["old"].shape == (record["pairs"]["n_val"], 384)
        assert pairs["seen_by"].size == 0


def test_the_gate_never_judges_an_adapter_on_pairs_it_stopped_early_on(tmp_path: Path) -> None:
    shared = synthetic_run(tmp_path / "validation", "adapter=all")
    # The MLPs stop early on the validation pairs; ridge and LA choose their penalty grid's value.
    seen = sorted(name for name in shared["adapters"] if not name.startswith("procrustes"))
    mlps = [name for name in seen if name.startswith("residual_mlp")]
    assert mlps and all("skipped" in shared["gate"][name] for name in seen)
    assert "arr" in shared["gate"]["procrustes"]
    with np.load(shared["artifacts"]["gate_pairs"], allow_pickle=False) as pairs:
        assert sorted(pairs["seen_by"].tolist()) == seen
    with pytest.raises(SystemExit) as exit_info:
        gate_main(
            [
                "--adapter-dir",
                shared["artifacts"][mlps[0]],
                "--pairs",
                shared["artifacts"]["gate_pairs"],
            ]
        )
    assert exit_info.value.code == 2
    own = synthetic_run(tmp_path / "gate", "adapter=all", "adapter.gate_fraction=0.2")
    assert own["pairs"]["n_gate"] > 0 and "arr" in own["gate"][mlps[0]]


def test_gate_and_export_consume_run_artifacts(record: dict, tmp_path: Path) -> None:
    adapter_dir = record["artifacts"]["procrustes"]
    report_path = tmp_path / "gate.json"
    with pytest.raises(SystemExit) as exit_info:
        gate_main(
            [
                "--adapter-dir",
                adapter_dir,
                "--pairs",
                record["artifacts"]["gate_pairs"],
                "--threshold",
                "0.5",
                "--n-boot",
                "50",
                "--json",
                str(report_path),
            ]
        )
    report = json.loads(report_path.read_text())["gate"]
    assert exit_info.value.code == EXIT_STATUS[report["decision"]]

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
    with np.load(record["artifacts"]["gate_pairs"], allow_pickle=False) as pairs:
        queries = pairs["new"]
    expected = load_adapter(adapter_dir).transform(queries)
    np.testing.assert_allclose(load_served(out).apply(queries), expected, atol=1e-6)


def test_result_and_artifact_files_are_as_readable_as_the_umask_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Result files and saved adapters get drift.core.files' mode (the umask's), never mkstemp's
    0600 or a fixed 0644: a mode that is neither shows which one they got."""
    monkeypatch.setattr(files, "FILE_MODE", 0o640)
    record = synthetic_run(tmp_path, "adapter=procrustes")
    adapter_files = sorted(Path(record["artifacts"]["procrustes"]).iterdir())
    assert [p.name for p in adapter_files] == ["adapter.json", "weights.npz"]
    written = [
        result_path(tmp_path / "results", record),
        Path(record["artifacts"]["gate_pairs"]),
        *adapter_files,
    ]
    assert [p.stat().st_mode & 0o777 for p in written] == [0o640] * len(written)
