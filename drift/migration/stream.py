"""Query-stream simulation: what serving a stream of queries costs in new-model encodes over time.

Strategies that need new-model document vectors (rerank encodes its candidates on demand; backfill
and the adapter pay upfront) share one embedding cache per strategy: a document encoded once is
kept and reused by every later query. This module serves a stream of query rows (in an order and
with repetitions drawn by `make_stream`, e.g. Zipf popularity) and reports, against the number of
queries served, the cumulative new-model document encodes (upfront included), their share of the
corpus, their seconds at the measured encode rate, the running quality, and the latency per query:
cold (the queries that encoded at least one document, each paying its encodes), warm (everything
it needs held) and amortised (the mean over every served query, most of them warm).

The model:
- Quality does not depend on cache state: a cached vector equals a fresh encode, so a query's
  answer, hence its per-query metric, is the same whenever it is served. Quality over the stream
  is the running mean of the per-query metrics of the queries served so far (repeats counted
  again, NaN queries, i.e. those without relevant documents, excluded). Only cost changes along
  the stream.
- A served query encodes the rows of its candidates (distinct, -1 padding ignored) not yet held,
  then holds them. Rows in `already_encoded` (e.g. the adapter's pairs, paid for upfront) are held
  from the start and never evicted.
- With `capacity`, the on-demand store holds at most that many vectors; after each query the least
  recently used are evicted (a query's candidates are touched in candidate order), and an evicted
  document is encoded again (and counted again) when a later query needs it. So encodes can then
  exceed N and share_encoded exceed 1.
- Time: encoding m documents is assumed to take m / encode_rate seconds, with encode_rate the
  measured batch throughput of the new model (drift.migration.cost.measure_encode_rate). This is an
  approximation that favours small batches: a query encoding a handful of documents cannot fill
  a batch and pays more per document in practice; queueing and batching across queries are not
  modelled either. A query's latency is its encodes / encode_rate plus its warm time; the warm
  time is the strategy's measured compute per query besides encodes (whole-batch us/query). The
  latency a strategy adds is its latency minus the status quo's (`stream_latency` gives both).

    stream = make_stream(n_queries=1000, length=20_000, popularity="zipf", zipf_s=1.0, seed=0)
    result = simulate_stream(stream, strategies, n_corpus=N, encode_rate=rate)
    print(summarise_stream(result))

Undefined running means (no query with relevant documents served yet) are None in the output,
so it is plain JSON.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.core.errors import ConfigError, DataError
from drift.migration.measured import mean_of

POPULARITIES = ("zipf", "uniform", "sequential")
N_CHECKPOINTS = 30


def make_stream(
    n_queries: int,
    length: int,
    popularity: str = "zipf",
    zipf_s: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Query rows [length] in serving order (int64), seeded.

    - zipf: drawn with replacement; query i has probability proportional to 1 / rank_i ** zipf_s,
      where the popularity ranking over the queries is a seeded random permutation (so the most
      popular query is not simply row 0).
    - uniform: drawn with replacement, every query equally likely.
    - sequential: no repeats: the first `length` queries of a seeded random order, so
      1 <= length <= n_queries (length = n_queries serves each query once).
    `zipf_s` is checked only for zipf, where it must be > 0.
    """
    if n_queries < 1:
        raise ConfigError(f"make_stream needs n_queries >= 1, got {n_queries}")
    if length < 1:
        raise ConfigError(f"make_stream needs length >= 1, got {length}")
    if popularity not in POPULARITIES:
        raise ConfigError(f"unknown stream popularity {popularity!r}; use one of {POPULARITIES}")
    rng = np.random.default_rng(seed)
    if popularity == "sequential":
        if length > n_queries:
            raise ConfigError(
                f"a sequential stream serves each of the {n_queries} queries at most once, "
                f"so length must be <= {n_queries}, got {length}"
            )
        return rng.permutation(n_queries)[:length].astype(np.int64)
    if popularity == "uniform":
        return rng.integers(0, n_queries, size=length, dtype=np.int64)
    if not (math.isfinite(zipf_s) and zipf_s > 0):
        raise ConfigError(f"zipf_s must be a finite number > 0, got {zipf_s}")
    rank = rng.permutation(n_queries) + 1  # query i's popularity rank, 1 = most popular
    weights = rank.astype(np.float64) ** -zipf_s
    return rng.choice(n_queries, size=length, p=weights / weights.sum()).astype(np.int64)


@dataclass
class StreamStrategy:
    """What the stream needs to know of one strategy, from its batch evaluation.

    per_query: metric name ("knn/recall@10", "qrels/ndcg@10", ...) -> value per query row [nq];
        NaN marks a query without relevant documents (excluded from means).
    upfront_encodes: new-model document encodes paid before serving (full re-index: N; adapter:
        its pairs; backfill: f * N (+ pairs); status quo: 0).
    candidates: rows [nq, C] (-1 padded) each query needs new-model vectors of, encoded on demand;
        None when the strategy encodes nothing per query.
    warm_seconds_per_query: measured compute per query besides encodes (search, adapter, rerank).
    already_encoded: rows paid for upfront (counted in upfront_encodes) that on-demand encoding
        reuses, e.g. the adapter's pairs.
    """

    per_query: dict[str, np.ndarray]
    upfront_encodes: int
    candidates: np.ndarray | None = None
    warm_seconds_per_query: float = 0.0
    already_encoded: np.ndarray | None = None
    n_queries: int | None = field(init=False, default=None)  # None: no per-query arrays

    def __post_init__(self) -> None:
        self.per_query = {m: np.asarray(v, dtype=np.float64) for m, v in self.per_query.items()}
        lengths = {len(v) for v in self.per_query.values()}
        if self.candidates is not None:
            self.candidates = np.asarray(self.candidates)
            if self.candidates.ndim != 2 or not np.issubdtype(self.candidates.dtype, np.integer):
                raise DataError(
                    f"candidates must be an integer array [nq, C], got shape "
                    f"{self.candidates.shape} dtype {self.candidates.dtype}"
                )
            lengths.add(len(self.candidates))
        if len(lengths) > 1:
            raise DataError(
                "a stream strategy's per-query metrics and candidates must cover the same query "
                f"rows; got lengths {sorted(lengths)}"
            )
        self.n_queries = lengths.pop() if lengths else None
        if self.upfront_encodes < 0 or self.warm_seconds_per_query < 0:
            raise ConfigError("upfront_encodes and warm_seconds_per_query must be >= 0")
        if self.already_encoded is not None:
            self.already_encoded = np.unique(np.asarray(self.already_encoded, dtype=np.int64))
            if self.already_encoded.size > self.upfront_encodes:
                raise DataError(
                    f"{self.already_encoded.size} already_encoded rows but only "
                    f"{self.upfront_encodes} upfront encodes; they are paid for upfront, so "
                    "upfront_encodes must include them"
                )


def _served_encodes(
    stream: np.ndarray, strategy: StreamStrategy, n_corpus: int, capacity: int | None = None
) -> np.ndarray:
    """Cold new-model document encodes at each served query [len(stream)] (upfront excluded)."""
    cold = np.zeros(len(stream), dtype=np.int64)
    if strategy.candidates is None:
        return cold
    held = np.zeros(n_corpus, dtype=bool)
    if strategy.already_encoded is not None:
        held[strategy.already_encoded] = True
    needed = {int(q): _on_demand_rows(strategy.candidates[q], held) for q in np.unique(stream)}
    if capacity is None:
        # The store only grows, so a query encodes only the first time it is served.
        _, first = np.unique(stream, return_index=True)
        for position in np.sort(first):
            rows = needed[int(stream[position])]
            new = rows[~held[rows]]
            held[new] = True
            cold[position] = new.size
        return cold
    largest = max(rows.size for rows in needed.values())
    if capacity < largest:
        raise ConfigError(
            f"capacity {capacity} is below the {largest} on-demand vectors one query needs at once"
        )
    store: OrderedDict[int, None] = OrderedDict()  # least recently used first
    for position, query in enumerate(stream):
        for row in needed[int(query)].tolist():
            if row in store:
                store.move_to_end(row)
            else:
                store[row] = None
                cold[position] += 1
        while len(store) > capacity:
            store.popitem(last=False)
    return cold


def _on_demand_rows(candidates: np.ndarray, permanent: np.ndarray) -> np.ndarray:
    """A query's distinct candidate rows in candidate order, less padding and permanent rows."""
    rows = candidates[candidates >= 0]
    _, first = np.unique(rows, return_index=True)
    rows = rows[np.sort(first)]
    return rows[~permanent[rows]]


def simulate_stream(
    stream: np.ndarray,
    strategies: dict[str, StreamStrategy],
    *,
    n_corpus: int,
    encode_rate: float,
    checkpoints: Sequence[int] | None = None,
    capacity: int | None = None,
    window: int | None = None,
) -> dict[str, Any]:
    """Serve `stream` with every strategy; cost, quality and latency against queries served.

    Args:
        stream: query rows in serving order (see make_stream).
        strategies: name -> StreamStrategy.
        n_corpus: corpus size N (candidate and already_encoded rows are < N).
        encode_rate: new-model documents per second on this hardware (measured batch throughput).
        checkpoints: numbers of queries served at which to report (1..len(stream)); len(stream)
            is always added, so the last point is the whole stream. Default: about 30 log-spaced
            points from 1 to len(stream).
        capacity: most on-demand vectors each strategy's store holds (LRU); None = unbounded.
        window: also report each strategy's `quality_window` (and `window`): per metric, the mean
            over the last `window` served queries at each checkpoint; None: not reported.
    Returns:
        Plain JSON: {length, n_unique_queries, n_corpus, encode_rate, checkpoints, strategies:
        {name: {encodes, share_encoded, encode_seconds, quality: {metric: [...]}, latency_us:
        {warm_mean, cold_query_mean, cold_query_p50, cold_query_p99, amortised_mean,
        amortised_p50, amortised_p99, first_query}, queries_with_encodes, final_encodes}}}; the
        lists hold one value per checkpoint. Latencies: cold_query_* over the queries that
        encoded at least one document (None when none did), amortised_* over every served query
        (each with the encodes it paid, so repeats are warm). Files written before cold queries
        were told apart hold cold_mean, cold_p50, cold_p99 for the amortised statistics; read
        either with `stream_latency`.
    """
    stream = check_stream(stream)
    if n_corpus < 1:
        raise ConfigError(f"n_corpus must be >= 1, got {n_corpus}")
    if not (math.isfinite(encode_rate) and encode_rate > 0):
        raise ConfigError(
            f"encode_rate must be a finite number of documents/s > 0, got {encode_rate}"
        )
    if capacity is not None and capacity < 1:
        raise ConfigError(f"capacity must be >= 1 vectors or None (unbounded), got {capacity}")
    check_window(window)
    points = stream_checkpoints(checkpoints, len(stream))
    out = {
        name: _simulate_one(name, stream, s, n_corpus, encode_rate, points, capacity, window)
        for name, s in strategies.items()
    }
    return {
        "length": len(stream),
        "n_unique_queries": int(np.unique(stream).size),
        "n_corpus": int(n_corpus),
        "encode_rate": float(encode_rate),
        "checkpoints": points.tolist(),
        "strategies": out,
    }


def _simulate_one(
    name: str,
    stream: np.ndarray,
    strategy: StreamStrategy,
    n_corpus: int,
    encode_rate: float,
    points: np.ndarray,
    capacity: int | None,
    window: int | None,
) -> dict[str, Any]:
    _check_strategy(name, strategy, stream, n_corpus)
    return served_curves(
        _served_encodes(stream, strategy, n_corpus, capacity),
        {metric: values[stream] for metric, values in strategy.per_query.items()},
        upfront=strategy.upfront_encodes,
        warm_seconds=float(strategy.warm_seconds_per_query),
        n_corpus=n_corpus,
        encode_rate=encode_rate,
        points=points,
        window=window,
    )


def served_curves(
    cold: np.ndarray,
    served_quality: dict[str, np.ndarray],
    *,
    upfront: int,
    warm_seconds: float,
    n_corpus: int,
    encode_rate: float,
    points: np.ndarray,
    window: int | None = None,
    background: np.ndarray | None = None,
) -> dict[str, Any]:
    """One strategy's curves (see simulate_stream) from what each served query cost and scored.

    Args:
        cold: new-model encodes at each served query [len(stream)] (upfront excluded).
        served_quality: metric -> the quality of each served query's answer [len(stream)] (NaN:
            no relevant document, excluded from means).
        upfront: encodes paid before serving.
        warm_seconds: compute per query besides encodes.
        points: checkpoints (numbers of queries served, 1-based, increasing).
        window: also report `quality_window`, the mean over the last `window` served queries at
            each checkpoint (None: not reported).
        background: encodes by a background job after each served query [len(stream)]: counted
            in encodes (and reported cumulatively as `background_encodes`), not in latency.
    """
    job = np.zeros_like(cold) if background is None else np.asarray(background)
    encodes = upfront + np.cumsum(cold + job)[points - 1]
    served_us = 1e6 * (cold / encode_rate + warm_seconds)
    cold_us = served_us[cold > 0]
    curves: dict[str, Any] = {
        "encodes": [int(e) for e in encodes],
        "share_encoded": [float(e) / n_corpus for e in encodes],
        "encode_seconds": [float(e) / encode_rate for e in encodes],
        "quality": {
            metric: _running_mean(values, points) for metric, values in served_quality.items()
        },
    }
    if background is not None:
        curves["background_encodes"] = [int(e) for e in np.cumsum(job)[points - 1]]
    if window is not None:
        curves["window"] = int(window)
        curves["quality_window"] = {
            metric: _running_mean(values, points, window)
            for metric, values in served_quality.items()
        }
    return curves | {
        "latency_us": {
            "warm_mean": 1e6 * warm_seconds,
            **_mean_p50_p99("cold_query", cold_us),
            **_mean_p50_p99("amortised", served_us),
            "first_query": float(served_us[0]),
        },
        "queries_with_encodes": float((cold > 0).mean()),
        "final_encodes": int(upfront + cold.sum() + job.sum()),
    }


def _mean_p50_p99(prefix: str, values: np.ndarray) -> dict[str, float | None]:
    """{prefix_mean, prefix_p50, prefix_p99} of values; None each when there are none."""
    if not values.size:
        return {f"{prefix}_{stat}": None for stat in ("mean", "p50", "p99")}
    return {
        f"{prefix}_mean": float(values.mean()),
        f"{prefix}_p50": float(np.percentile(values, 50)),
        f"{prefix}_p99": float(np.percentile(values, 99)),
    }


def _running_mean(
    values: np.ndarray, points: np.ndarray, window: int | None = None
) -> list[float | None]:
    """Mean of the non-NaN values among the first p (with `window`: among the last `window` of
    the first p), for each p in points (None if none)."""
    judged = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(judged, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(judged)])
    start = np.zeros_like(points) if window is None else np.maximum(points - window, 0)
    total, count = sums[points] - sums[start], counts[points] - counts[start]
    return [float(s / c) if c else None for s, c in zip(total, count, strict=True)]


def stream_checkpoints(checkpoints: Sequence[int] | None, length: int) -> np.ndarray:
    if checkpoints is None:
        return np.unique(np.rint(np.geomspace(1, length, N_CHECKPOINTS)).astype(np.int64))
    points = np.asarray(checkpoints, dtype=np.int64)
    if points.ndim != 1 or points.size == 0 or points.min() < 1 or points.max() > length:
        raise ConfigError(
            f"checkpoints must be numbers of queries served in 1..{length}, got {list(checkpoints)}"
        )
    return np.unique(np.append(points, length))


def check_window(window: int | None) -> None:
    if window is not None and window < 1:
        raise ConfigError(f"the quality window must be >= 1 queries or None, got {window}")


def check_stream(stream: np.ndarray) -> np.ndarray:
    """`stream` as int64 query rows, refused unless a non-empty 1-D integer array >= 0."""
    stream = np.asarray(stream)
    if stream.ndim != 1 or stream.size == 0 or not np.issubdtype(stream.dtype, np.integer):
        raise DataError(
            f"a stream is a non-empty 1-D array of query rows, got shape {stream.shape} "
            f"dtype {stream.dtype}"
        )
    if stream.min() < 0:
        raise DataError(f"a stream holds query rows >= 0, got {int(stream.min())}")
    return stream.astype(np.int64)


def _check_strategy(name: str, s: StreamStrategy, stream: np.ndarray, n_corpus: int) -> None:
    if s.n_queries is not None and stream.max() >= s.n_queries:
        raise DataError(
            f"stream strategy {name!r} covers {s.n_queries} queries, the stream serves row "
            f"{int(stream.max())}"
        )
    for field_name, rows in (("candidates", s.candidates), ("already_encoded", s.already_encoded)):
        if rows is not None and rows.size and rows.max() >= n_corpus:
            raise DataError(
                f"stream strategy {name!r}: {field_name} must be corpus rows < N = {n_corpus}"
            )
    if s.already_encoded is not None and s.already_encoded.size and s.already_encoded.min() < 0:
        raise DataError(f"stream strategy {name!r}: already_encoded rows must be >= 0")


LATENCY_STATS = ("mean", "p50", "p99")


def format_us(us: float) -> str:
    """A latency given in µs as text in µs, ms or s."""
    if abs(us) < 1e3:
        return f"{us:.3g} µs"
    if abs(us) < 1e6:
        return f"{us / 1e3:.3g} ms"
    return f"{us / 1e6:,.3g} s" if abs(us) < 1e9 else f"{us / 1e6:,.0f} s"


def stream_latency(stream: dict[str, Any], strategy: str) -> dict[str, float | None]:
    """One strategy's latency per query (µs) in a stream section, from files old and new.

    Keys: warm_mean (nothing to encode); cold_query_mean/_p50/_p99 (over the queries that
    encoded at least one document, None when none did) and cold_query_encodes (documents such a
    query encodes on average); amortised_mean/_p50/_p99 (over every served query); first_query;
    queries_with_encodes (their share of the stream); status_quo (the status quo's time per
    query in the same stream, None when it did not serve it) and added_cold_query_mean,
    added_warm_mean, added_amortised_mean (minus the status quo's time; None without it).

    Files written before cold queries were told apart hold only the amortised statistics (named
    cold_mean, cold_p50, cold_p99 then). The cold mean follows from them exactly (every query
    takes warm + its encodes / rate, so the encoding part of the amortised mean, divided by the
    share of queries that encoded, is their mean's); the cold percentiles do not: None.
    """
    served = stream["strategies"][strategy]
    latency = served.get("latency_us") or {}
    warm = latency.get("warm_mean")
    share = served.get("queries_with_encodes")
    out: dict[str, float | None] = {"warm_mean": warm}
    if "amortised_mean" in latency:
        recorded = ("cold_query", "amortised")
        out |= {
            f"{k}_{stat}": latency.get(f"{k}_{stat}") for k in recorded for stat in LATENCY_STATS
        }
    else:
        out |= {f"amortised_{stat}": latency.get(f"cold_{stat}") for stat in LATENCY_STATS}
        amortised = out["amortised_mean"]
        derived = None
        if share and warm is not None and amortised is not None:
            derived = warm + (amortised - warm) / share
        out |= {"cold_query_mean": derived, "cold_query_p50": None, "cold_query_p99": None}
    cold = out["cold_query_mean"]
    out["cold_query_encodes"] = (
        (cold - warm) * stream["encode_rate"] / 1e6
        if cold is not None and warm is not None
        else None
    )
    out["first_query"] = latency.get("first_query")
    out["queries_with_encodes"] = share
    status_quo = (stream["strategies"].get("status_quo") or {}).get("latency_us") or {}
    base = status_quo.get("warm_mean")
    out["status_quo"] = base
    for key in ("cold_query_mean", "warm_mean", "amortised_mean"):
        value = out[key]
        out[f"added_{key}"] = value - base if value is not None and base is not None else None
    return out


def mean_latency(streams: Sequence[dict[str, Any]], strategy: str) -> dict[str, float | None]:
    """`stream_latency` averaged over the stream sections that served `strategy` (each key over
    the streams that have it; None where none does)."""
    found = [stream_latency(s, strategy) for s in streams if strategy in s["strategies"]]
    if not found:
        raise DataError(f"no stream section served strategy {strategy!r}")
    return {key: mean_of(found, key) for key in found[0]}


def summarise_stream(result: dict[str, Any]) -> str:
    """A Markdown table: final encodes and share, final quality per metric, latency per query
    (cold: the queries that encoded; amortised: every served query)."""
    strategies = result["strategies"]
    metrics = list(dict.fromkeys(m for s in strategies.values() for m in s["quality"]))
    stats = ("warm_mean", "cold_query_mean", "cold_query_p99", "first_query", "amortised_mean")
    lines = [
        f"Stream of {result['length']:,} queries ({result['n_unique_queries']:,} distinct), "
        f"N = {result['n_corpus']:,}, {result['encode_rate']:.3g} new-model documents/s.",
        "",
        "| strategy | encodes | share of N | "
        + "".join(f"{m} | " for m in metrics)
        + "warm ms | cold mean ms | cold p99 ms | first query ms | amortised mean ms |",
        "|---|---|---|" + "---|" * len(metrics) + "---|---|---|---|---|",
    ]
    for name, s in strategies.items():
        quality = [s["quality"].get(m, [None])[-1] for m in metrics]
        latency = stream_latency(result, name)
        lines.append(
            f"| {name} | {s['final_encodes']:,} | {s['final_encodes'] / result['n_corpus']:.1%} | "
            + "".join("n/a | " if q is None else f"{q:.3f} | " for q in quality)
            + "".join(
                "n/a | " if latency[k] is None else f"{latency[k] / 1e3:,.2f} | " for k in stats
            )
        )
    lines += [
        "",
        "Cold: the queries that encoded at least one document (n/a: none did); amortised: every "
        "served query.",
    ]
    if "status_quo" in strategies:
        base = stream_latency(result, "status_quo")["warm_mean"]
        lines[-1] += f" Added latency: minus the status quo's {base / 1e3:,.2f} ms per query."
    if result.get("demand"):
        lines += ["", *_demand_table(result)]
    return "\n".join(lines) + "\n"


def _demand_table(result: dict[str, Any]) -> list[str]:
    """Demand-driven migration (the stream section's `demand` part) beside the lazy re-rank of
    the same candidates: final encodes, share, running and windowed quality."""
    demand = result["demand"]
    rows = {**result["strategies"], **demand["strategies"]}
    names: list[str] = []
    for name, served in demand["strategies"].items():
        names += [name, *([served["lazy"]] if served["lazy"] in result["strategies"] else [])]
    metrics = list(dict.fromkeys(m for n in names for m in rows[n]["quality"]))
    window = demand["config"]["window"]
    lines = [
        f"Demand-driven migration (K' = {demand['config']['new_depth']} partial-index hits) "
        f"beside lazy re-rank; last {window:,}: mean over the last {window:,} served queries.",
        "",
        "| strategy | encodes | share of N | "
        + "".join(f"{m} | {m}, last {window:,} | " for m in metrics),
        "|---|---|---|" + "---|---|" * len(metrics),
    ]
    for name in names:
        s = rows[name]
        cells = [
            value[-1] if value else None
            for m in metrics
            for value in (s["quality"].get(m), (s.get("quality_window") or {}).get(m))
        ]
        lines.append(
            f"| {name} | {s['final_encodes']:,} | {s['final_encodes'] / result['n_corpus']:.1%} | "
            + "".join("n/a | " if c is None else f"{c:.3f} | " for c in cells)
        )
    return lines
