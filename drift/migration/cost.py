"""What an embedding-model upgrade costs, strategy by strategy: pure arithmetic on stated inputs.

    drift cost                                   # the table for N = 1M, 100M, 1B, assumed figures
    drift cost --n 1e6,1e8 --measure             # measure this CPU's encode/build/fit rates first
    drift cost --gpu H100 30000 6000 4.0 "my own measurement"   # add a device of your own

Strategies (N corpus items, Np adapter pairs, f backfill fraction):

- full_reembed:     encode all N items with the new model, then rebuild the index. Done in place,
                    the service has no consistent index until both finish: downtime = wall time.
- dual_index:       the same re-embedding, but a second (new-model) index is built beside the old
                    one and both are served during the migration window: no downtime, the new
                    index's memory for the whole window, and every item written during the window
                    encoded by both models. The new index can only take over once it also holds
                    those writes, so the window is the fixed point T = (N + r T) h (r writes per
                    hour, h hours to encode and insert one item): T = N h / (1 - r h). When
                    r h >= 1 the writes outpace the migration and it never completes.
- adapter:          encode Np items with the new model (and the old one, unless their old vectors
                    are read back from storage), fit the adapter; the old index stays as it is.
- partial_backfill: re-embed a fraction f of the corpus into a (partial) new-model index and
                    serve the rest through the adapter: adapter cost plus f of the re-embedding,
                    and a new index over f N items held in memory.

Every figure an estimate depends on is an input (a dataclass field), so a table can always say
where its numbers came from: "measured" on named hardware, or "assumed" with a source. The only
measuring functions (`measure_encode_rate`, `measure_index_build_rate`, `measure_fit_seconds`)
are separate from the arithmetic, which the tests check on hand-computed cases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from drift.core.errors import ConfigError

HOUR = 3600.0
GB = 1e9
STRATEGIES = ("full_reembed", "dual_index", "adapter", "partial_backfill")


@dataclass(frozen=True)
class Hardware:
    """An encoding device: each model's throughput on it, and its price."""

    name: str
    old_items_per_s: float
    new_items_per_s: float
    usd_per_hour: float
    source: str

    def __post_init__(self) -> None:
        for field in ("old_items_per_s", "new_items_per_s"):
            if not getattr(self, field) > 0:
                raise ConfigError(f"hardware {self.name!r}: {field} must be > 0")
        if not self.usd_per_hour >= 0:
            raise ConfigError(f"hardware {self.name!r}: usd_per_hour must be >= 0")


@dataclass(frozen=True)
class Workload:
    """Everything but the encoding device.

    Attributes:
        n_items: N, corpus size.
        n_pairs: Np, items encoded by both models for the adapter (paper: 20,000).
        d_old, d_new: vector dimensions (memory of the indexes).
        hnsw_m: HNSW M (graph links per vector, for memory).
        index_build_items_per_s: HNSW insertion rate of the build machine.
        cpu_usd_per_hour: price of the machine that builds indexes and fits the adapter.
        fit_seconds: adapter fit time on that machine.
        memory_usd_per_gb_hour: price of holding one GB of index in RAM for an hour.
        daily_write_fraction: new corpus items written per day, as a share of N (each is encoded
            by both models while dual-serving).
        migration_hours: dual-index window; None: as long as the re-embedding takes (its minimum).
        backfill_fraction: f of partial_backfill.
        n_encoders: encoding devices working in parallel (divides encoding wall time).
        reencode_old_pairs: encode the Np pairs with the old model too (False when their old
            vectors can be read back from the index or a vector store).
    """

    n_items: int
    index_build_items_per_s: float
    fit_seconds: float
    n_pairs: int = 20_000
    d_old: int = 384
    d_new: int = 768
    hnsw_m: int = 32
    cpu_usd_per_hour: float = 0.10
    memory_usd_per_gb_hour: float = 0.005
    daily_write_fraction: float = 0.01
    migration_hours: float | None = None
    backfill_fraction: float = 0.05
    n_encoders: int = 1
    reencode_old_pairs: bool = True

    def __post_init__(self) -> None:
        if self.n_items < 1 or self.n_pairs < 1 or self.n_encoders < 1:
            raise ConfigError("n_items, n_pairs and n_encoders must be >= 1")
        if self.n_pairs > self.n_items:
            raise ConfigError(f"n_pairs ({self.n_pairs}) exceeds n_items ({self.n_items})")
        if not self.index_build_items_per_s > 0:
            raise ConfigError("index_build_items_per_s must be > 0")
        if not 0.0 <= self.backfill_fraction <= 1.0:
            raise ConfigError(f"backfill_fraction must be in [0, 1], got {self.backfill_fraction}")
        for name in (
            "fit_seconds",
            "cpu_usd_per_hour",
            "memory_usd_per_gb_hour",
            "daily_write_fraction",
        ):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.migration_hours is not None and not self.migration_hours >= 0:
            raise ConfigError(f"migration_hours must be >= 0, got {self.migration_hours}")


@dataclass(frozen=True)
class StrategyCost:
    """One strategy's cost. Hours of devices are summed over devices; wall hours are elapsed."""

    strategy: str
    n_items: int
    hardware: str
    new_encodes: float
    old_encodes: float
    encode_device_hours: float
    cpu_hours: float
    wall_hours: float
    downtime_hours: float
    extra_memory_gb: float
    memory_hours: float
    usd: float
    notes: str
    feasible: bool = True


def hnsw_bytes_per_vector(d: int, m: int) -> float:
    """RAM of one vector in a faiss IndexHNSWFlat: float32 vector, 2M level-0 links of 4 bytes,
    about 4M/(M-1) bytes of upper-level links, and ~16 bytes of level and offset bookkeeping."""
    return 4.0 * d + 8.0 * m + 4.0 * m / (m - 1) + 16.0


def index_gb(n: float, d: int, m: int) -> float:
    return n * hnsw_bytes_per_vector(d, m) / GB


def full_reembed(w: Workload, hw: Hardware) -> StrategyCost:
    encode_h = w.n_items / hw.new_items_per_s / HOUR
    build_h = w.n_items / w.index_build_items_per_s / HOUR
    wall = encode_h / w.n_encoders + build_h
    return StrategyCost(
        "full_reembed",
        w.n_items,
        hw.name,
        new_encodes=w.n_items,
        old_encodes=0,
        encode_device_hours=encode_h,
        cpu_hours=build_h,
        wall_hours=wall,
        downtime_hours=wall,
        extra_memory_gb=0.0,
        memory_hours=0.0,
        usd=encode_h * hw.usd_per_hour + build_h * w.cpu_usd_per_hour,
        notes="in place: no consistent index until encoding and rebuild finish; writes "
        "arriving meanwhile wait in a queue (not priced)",
    )


def dual_index(w: Workload, hw: Hardware) -> StrategyCost:
    hours_per_item = 1.0 / (hw.new_items_per_s * w.n_encoders) + 1.0 / w.index_build_items_per_s
    hours_per_item /= HOUR
    writes_per_hour = w.daily_write_fraction * w.n_items / 24.0
    load = writes_per_hour * hours_per_item  # share of the migration's capacity the writes take
    if load >= 1.0:
        inf = float("inf")
        return StrategyCost(
            "dual_index",
            w.n_items,
            hw.name,
            new_encodes=inf,
            old_encodes=0,
            encode_device_hours=inf,
            cpu_hours=inf,
            wall_hours=inf,
            downtime_hours=0.0,
            extra_memory_gb=index_gb(w.n_items, w.d_new, w.hnsw_m),
            memory_hours=inf,
            usd=inf,
            notes=f"never completes: {writes_per_hour / HOUR:.3g} writes/s arrive faster than "
            f"the new index takes items in ({1.0 / (hours_per_item * HOUR):.3g}/s); add encoders",
            feasible=False,
        )
    shortest = w.n_items * hours_per_item / (1.0 - load)
    window = max(shortest, w.migration_hours or 0.0)
    writes = writes_per_hour * window
    encode_h = (w.n_items + writes) / hw.new_items_per_s / HOUR
    build_h = (w.n_items + writes) / w.index_build_items_per_s / HOUR
    memory_gb = index_gb(w.n_items, w.d_new, w.hnsw_m)
    asked = w.migration_hours
    too_short = asked is not None and asked < shortest
    stretched = f"; the {asked:.3g} h asked for is too short" if too_short else ""
    return StrategyCost(
        "dual_index",
        w.n_items,
        hw.name,
        new_encodes=w.n_items + writes,
        old_encodes=0,
        encode_device_hours=encode_h,
        cpu_hours=build_h,
        wall_hours=window,
        downtime_hours=0.0,
        extra_memory_gb=memory_gb,
        memory_hours=window,
        usd=(
            encode_h * hw.usd_per_hour
            + build_h * w.cpu_usd_per_hour
            + memory_gb * window * w.memory_usd_per_gb_hour
        ),
        notes=f"{writes:.3g} writes encoded by both models over a {window:.3g} h window "
        f"(writes take {load:.0%} of the migration's capacity{stretched}); queries are encoded "
        "and searched twice too (not priced)",
    )


def adapter_path(w: Workload, hw: Hardware) -> StrategyCost:
    old = w.n_pairs if w.reencode_old_pairs else 0
    encode_h = (w.n_pairs / hw.new_items_per_s + old / hw.old_items_per_s) / HOUR
    fit_h = w.fit_seconds / HOUR
    return StrategyCost(
        "adapter",
        w.n_items,
        hw.name,
        new_encodes=w.n_pairs,
        old_encodes=old,
        encode_device_hours=encode_h,
        cpu_hours=fit_h,
        wall_hours=encode_h / w.n_encoders + fit_h,
        downtime_hours=0.0,
        extra_memory_gb=4.0 * w.d_new * w.d_old / GB,
        memory_hours=0.0,
        usd=encode_h * hw.usd_per_hour + fit_h * w.cpu_usd_per_hour,
        notes="old index untouched; writes keep the old model; each query pays the adapter "
        "(see results/bench/latency.json)",
    )


def partial_backfill(w: Workload, hw: Hardware) -> StrategyCost:
    adapter = adapter_path(w, hw)
    n_back = w.backfill_fraction * w.n_items
    encode_h = adapter.encode_device_hours + n_back / hw.new_items_per_s / HOUR
    cpu_h = adapter.cpu_hours + n_back / w.index_build_items_per_s / HOUR
    wall = (
        adapter.wall_hours
        + (n_back / hw.new_items_per_s / w.n_encoders + n_back / w.index_build_items_per_s) / HOUR
    )
    return StrategyCost(
        "partial_backfill",
        w.n_items,
        hw.name,
        new_encodes=w.n_pairs + n_back,
        old_encodes=adapter.old_encodes,
        encode_device_hours=encode_h,
        cpu_hours=cpu_h,
        wall_hours=wall,
        downtime_hours=0.0,
        extra_memory_gb=index_gb(n_back, w.d_new, w.hnsw_m) + adapter.extra_memory_gb,
        memory_hours=0.0,
        usd=encode_h * hw.usd_per_hour + cpu_h * w.cpu_usd_per_hour,
        notes=f"f = {w.backfill_fraction:g}: {n_back:.3g} items re-embedded into a new-model "
        "index (memory held while it serves, not priced); pairs encoded separately",
    )


STRATEGY_FUNCTIONS = {
    "full_reembed": full_reembed,
    "dual_index": dual_index,
    "adapter": adapter_path,
    "partial_backfill": partial_backfill,
}


def compare(w: Workload, hw: Hardware) -> dict[str, Any]:
    """All four strategies plus the full-re-embed / adapter ratio and what it depends on."""
    costs = {name: fn(w, hw) for name, fn in STRATEGY_FUNCTIONS.items()}
    full, adapter = costs["full_reembed"], costs["adapter"]
    rate_share = hw.old_items_per_s / (hw.old_items_per_s + hw.new_items_per_s)
    return {
        "costs": costs,
        "ratio": {
            "usd": full.usd / adapter.usd if adapter.usd > 0 else float("inf"),
            "encode_device_hours": full.encode_device_hours / adapter.encode_device_hours,
            "n_over_np": w.n_items / w.n_pairs,
            # Encoding alone: N / (Np (1 + new/old rate)) with old pairs re-encoded, else N / Np.
            "encode_only_limit": (
                w.n_items / w.n_pairs * (rate_share if w.reencode_old_pairs else 1.0)
            ),
            "fit_share_of_adapter_usd": (
                w.fit_seconds / HOUR * w.cpu_usd_per_hour / adapter.usd if adapter.usd > 0 else 0.0
            ),
        },
    }


# -- measuring the inputs (optional; needs models and faiss) -----------------------------------
def measure_encode_rate(
    encoder: Any, items: Sequence[Any], *, batch_size: int | None = None, warmup_items: int = 16
) -> float:
    """Items per second of `encoder.encode` over `items` (after encoding a few to warm up)."""
    if len(items) == 0:
        raise ConfigError("measure_encode_rate needs at least one item")
    encoder.encode(list(items[:warmup_items]), batch_size=batch_size)
    start = time.perf_counter()
    encoder.encode(list(items), batch_size=batch_size)
    return len(items) / (time.perf_counter() - start)


def measure_index_build_rate(
    d: int, *, n: int = 20_000, m: int = 32, ef_construction: int = 200, seed: int = 0
) -> float:
    """HNSW insertions per second on this machine, on seeded synthetic unit vectors."""
    from drift.core.vectors import l2_normalize
    from drift.retrieval.index import IndexSpec, build_index

    vectors = l2_normalize(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))
    spec = IndexSpec(kind="hnsw", m=m, ef_construction=ef_construction, device="cpu")
    start = time.perf_counter()
    build_index(vectors, spec)
    return n / (time.perf_counter() - start)


def measure_fit_seconds(
    kind: str, d_new: int, d_old: int, n_pairs: int, *, seed: int = 0, **hparams: Any
) -> float:
    """Fit time of one adapter on seeded synthetic pairs of the given size (time, not quality)."""
    from drift.adapters import build_adapter
    from drift.core.vectors import l2_normalize

    rng = np.random.default_rng(seed)
    x_new = l2_normalize(rng.standard_normal((n_pairs, d_new)).astype(np.float32))
    x_old = l2_normalize(x_new @ rng.standard_normal((d_new, d_old)).astype(np.float32))
    adapter = build_adapter(kind, **hparams).fit(x_new, x_old, seed=seed)
    return float(adapter.fit_seconds)


# -- assumed figures ----------------------------------------------------------------------------
ASSUMED_HARDWARE: tuple[Hardware, ...] = (
    Hardware(
        "CPU, 2 cores",
        old_items_per_s=450.0,
        new_items_per_s=80.0,
        usd_per_hour=0.10,
        source="assumed: MiniLM-L6 ~450 and mpnet ~80 sentences/s seen on this project's 2-core "
        "machines; price assumed (a 2-vCPU cloud VM)",
    ),
    Hardware(
        "V100 GPU",
        old_items_per_s=14_200.0,
        new_items_per_s=2_800.0,
        usd_per_hour=3.06,
        source="assumed: all-MiniLM-L6-v2 14,200 and all-mpnet-base-v2 2,800 sentences/s on a V100 "
        "(sbert.net pretrained-models table); price: on-demand list price of a 1-V100 cloud "
        "instance (AWS p3.2xlarge), assumed",
    ),
)
ASSUMED_BUILD_RATE = (
    1_000.0,
    "assumed: HNSW M=32 efConstruction=200 inserts per second on 2 "
    "CPU cores (order of magnitude seen here; use --measure)",
)
ASSUMED_FIT_SECONDS = (60.0, "assumed: residual MLP on 16k pairs on 2 CPU cores (use --measure)")


# -- command line -------------------------------------------------------------------------------
def build_table(
    n_values: Sequence[int], hardware: Sequence[Hardware], base: Workload
) -> list[dict]:
    rows = []
    for hw in hardware:
        for n in n_values:
            w = replace(base, n_items=int(n), n_pairs=min(base.n_pairs, int(n)))
            result = compare(w, hw)
            rows.append(
                {
                    "n_items": int(n),
                    "hardware": hw.name,
                    "ratio": result["ratio"],
                    "costs": {k: asdict(v) for k, v in result["costs"].items()},
                }
            )
    return rows


def markdown(rows: list[dict], inputs: dict[str, Any]) -> str:
    lines = [
        "| N | hardware | strategy | encode device-h | CPU h | wall h | downtime h | "
        "extra RAM GB | USD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for name in STRATEGIES:
            c = row["costs"][name]
            figures = [
                _figure(c[key])
                for key in ("encode_device_hours", "cpu_hours", "wall_hours", "downtime_hours")
            ]
            lines.append(
                f"| {row['n_items']:.0e} | {row['hardware']} | {name} | {' | '.join(figures)} | "
                f"{c['extra_memory_gb']:.3g} | {_figure(c['usd'])} |"
            )
    lines += [
        f"\n{row['n_items']:.0e}, {row['hardware']}, {name}: {c['notes']}"
        for row in rows
        for name, c in row["costs"].items()
        if not c["feasible"]
    ]
    lines += [
        "",
        "| N | hardware | full re-embed / adapter (USD) | (encode device-h) | N/Np | "
        "encode-only limit | fit share of adapter USD |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row["ratio"]
        lines.append(
            f"| {row['n_items']:.0e} | {row['hardware']} | {r['usd']:.3g} | "
            f"{r['encode_device_hours']:.3g} | {r['n_over_np']:.3g} | "
            f"{r['encode_only_limit']:.3g} | {r['fit_share_of_adapter_usd']:.2f} |"
        )
    lines += ["", "Inputs and their sources:", ""]
    lines += [f"- {k}: {json.dumps(v)}" for k, v in inputs.items()]
    return "\n".join(lines) + "\n"


def _figure(value: float) -> str:
    """A cost for the table; infinite where the strategy never completes."""
    return f"{value:.3g}" if np.isfinite(value) else "never"
