"""drift.migration.cost: the strategy arithmetic on hand-computed cases (no model, no
measurement)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from drift.cli.cost import main, parse_n
from drift.core.errors import ConfigError
from drift.migration.cost import (
    Hardware,
    Workload,
    adapter_path,
    compare,
    dual_index,
    full_reembed,
    hnsw_bytes_per_vector,
    measure_encode_rate,
    partial_backfill,
)

# Round numbers chosen so every figure below can be checked by hand.
HW = Hardware(
    "test device",
    old_items_per_s=200.0,
    new_items_per_s=100.0,
    usd_per_hour=2.0,
    source="assumed for the test",
)
W = Workload(
    n_items=3_600_000,
    n_pairs=36_000,
    d_old=384,
    d_new=768,
    hnsw_m=32,
    index_build_items_per_s=1_000.0,
    cpu_usd_per_hour=1.0,
    fit_seconds=360.0,
    memory_usd_per_gb_hour=0.01,
    daily_write_fraction=0.24,
    backfill_fraction=0.1,
)


def test_hnsw_bytes_per_vector():
    # 4 d + 8 M + 4 M / (M - 1) + 16
    assert hnsw_bytes_per_vector(384, 32) == pytest.approx(1536 + 256 + 128 / 31 + 16)


def test_full_reembed():
    c = full_reembed(W, HW)
    assert c.encode_device_hours == pytest.approx(10.0)  # 3.6e6 / 100 per s / 3600
    assert c.cpu_hours == pytest.approx(1.0)  # 3.6e6 / 1000 per s / 3600
    assert c.wall_hours == pytest.approx(11.0)
    assert c.downtime_hours == pytest.approx(11.0)
    assert c.usd == pytest.approx(10.0 * 2.0 + 1.0 * 1.0)
    assert c.extra_memory_gb == 0.0


def test_parallel_encoders_divide_encoding_wall_time_only():
    c = full_reembed(replace(W, n_encoders=2), HW)
    assert c.wall_hours == pytest.approx(5.0 + 1.0)
    assert c.usd == pytest.approx(21.0)


def test_dual_index_window_takes_in_the_writes_it_waits_for():
    c = dual_index(W, HW)
    # 1 item costs 1/100 s encoding + 1/1000 s inserting: 1.1/360,000 h; 11 h for the corpus.
    # 0.24 N a day = 36,000 writes an hour take 11% of that capacity: T = 11 h / 0.89.
    window = 11.0 / 0.89
    writes = 36_000 * window
    assert c.wall_hours == pytest.approx(window)
    assert c.new_encodes == pytest.approx(3_600_000 + writes)
    assert c.encode_device_hours == pytest.approx((3_600_000 + writes) / 100 / 3600)
    assert c.cpu_hours == pytest.approx((3_600_000 + writes) / 1000 / 3600)
    assert c.encode_device_hours / 1 + c.cpu_hours == pytest.approx(window)  # one encoder
    memory_gb = 3_600_000 * (4 * 768 + 256 + 128 / 31 + 16) / 1e9
    assert c.extra_memory_gb == pytest.approx(memory_gb)
    assert c.usd == pytest.approx(
        c.encode_device_hours * 2.0 + c.cpu_hours * 1.0 + memory_gb * window * 0.01
    )
    assert c.downtime_hours == 0.0 and c.feasible


def test_dual_index_with_a_longer_window():
    c = dual_index(replace(W, migration_hours=48.0), HW)
    assert c.wall_hours == pytest.approx(48.0)
    assert c.memory_hours == pytest.approx(48.0)
    assert c.new_encodes == pytest.approx(3_600_000 + 36_000 * 48.0)


def test_dual_index_window_cannot_be_shorter_than_the_migration():
    c = dual_index(replace(W, migration_hours=1.0), HW)
    assert c.wall_hours == pytest.approx(11.0 / 0.89)
    assert "too short" in c.notes


def test_dual_index_never_completes_when_writes_outpace_it():
    # 9.1 N a day = 1.365M writes an hour, more than the 327k items an hour it can take in
    c = dual_index(replace(W, daily_write_fraction=9.1), HW)
    assert not c.feasible
    assert c.wall_hours == float("inf") and c.usd == float("inf")
    assert "never completes" in c.notes
    assert compare(replace(W, daily_write_fraction=9.1), HW)["ratio"]["usd"] == pytest.approx(52.5)


def test_adapter_path():
    c = adapter_path(W, HW)
    assert c.encode_device_hours == pytest.approx(0.1 + 0.05)  # 36k / 100 + 36k / 200 per s
    assert c.cpu_hours == pytest.approx(0.1)  # 360 s fit
    assert c.wall_hours == pytest.approx(0.25)
    assert c.usd == pytest.approx(0.15 * 2.0 + 0.1 * 1.0)
    assert c.downtime_hours == 0.0
    stored = adapter_path(replace(W, reencode_old_pairs=False), HW)
    assert stored.old_encodes == 0 and stored.usd == pytest.approx(0.1 * 2.0 + 0.1)


def test_partial_backfill():
    c = partial_backfill(W, HW)
    # adapter (0.15 device-h, 0.1 CPU h) + 360k items: 1 device-h encoding, 0.1 CPU h building
    assert c.encode_device_hours == pytest.approx(1.15)
    assert c.cpu_hours == pytest.approx(0.2)
    assert c.wall_hours == pytest.approx(0.25 + 1.0 + 0.1)
    assert c.usd == pytest.approx(1.15 * 2.0 + 0.2 * 1.0)


def test_ratio_and_what_it_depends_on():
    ratio = compare(W, HW)["ratio"]
    assert ratio["usd"] == pytest.approx(21.0 / 0.4)
    assert ratio["encode_device_hours"] == pytest.approx(10.0 / 0.15)
    assert ratio["n_over_np"] == pytest.approx(100.0)
    assert ratio["encode_only_limit"] == pytest.approx(100.0 * 200 / 300)
    assert ratio["fit_share_of_adapter_usd"] == pytest.approx(0.1 / 0.4)
    assert compare(replace(W, reencode_old_pairs=False), HW)["ratio"]["encode_only_limit"] == (
        pytest.approx(100.0)
    )


@pytest.mark.parametrize(
    "change",
    [
        {"n_pairs": 4_000_000},
        {"backfill_fraction": 1.5},
        {"index_build_items_per_s": 0.0},
        {"fit_seconds": -1.0},
        {"n_encoders": 0},
    ],
)
def test_bad_workloads_are_refused(change):
    with pytest.raises(ConfigError):
        replace(W, **change)


def test_bad_hardware_is_refused():
    with pytest.raises(ConfigError, match="new_items_per_s"):
        Hardware("x", 1.0, 0.0, 1.0, "assumed")


def test_parse_n():
    assert parse_n("1e6, 100000000,1e9") == [1_000_000, 100_000_000, 1_000_000_000]
    with pytest.raises(ConfigError):
        parse_n("a lot")


def test_measure_encode_rate_counts_items():
    class CountingEncoder:
        def __init__(self):
            self.seen = 0

        def encode(self, items, batch_size=None):
            self.seen += len(items)
            return np.zeros((len(items), 4), np.float32)

    encoder = CountingEncoder()
    assert measure_encode_rate(encoder, ["x"] * 50, warmup_items=5) > 0
    assert encoder.seen == 55


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    main(
        [
            "--n",
            "1e6,1e9",
            "--out",
            str(tmp_path),
            "--gpu",
            "H100",
            "30000",
            "6000",
            "4.0",
            "assumed for the test",
        ]
    )
    record = json.loads((tmp_path / "cost.json").read_text())
    assert [(r["n_items"], r["hardware"]) for r in record["rows"]][-1] == (1_000_000_000, "H100")
    assert set(record["rows"][0]["costs"]) == {
        "full_reembed",
        "dual_index",
        "adapter",
        "partial_backfill",
    }
    assert "assumed" in record["inputs"]["hardware"][0]["source"]
    table = (tmp_path / "cost.md").read_text()
    assert "| full_reembed |" in table and "full re-embed / adapter" in capsys.readouterr().out
    # 1% of 1e9 written a day is 116 items/s, more than the assumed CPU's 80/s for the new model
    cpu_1e9 = record["rows"][1]["costs"]["dual_index"]
    assert not cpu_1e9["feasible"] and cpu_1e9["wall_hours"] is None
    assert "| 1e+09 | CPU, 2 cores | dual_index | never |" in table
