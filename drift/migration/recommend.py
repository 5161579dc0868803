"""Which upgrade strategy reaches a quality target cheapest, and when: from measured result files.

    drift recommend --results results/beyond_paper --corpus-size 1e6 --encode-rate 80 \\
        --query-rate 5 --target 0.95 [--popularity zipf --zipf-s 1] [--metric qrels/ndcg@10] \\
        [--horizon-days 30] [--json]

Reads the result files under --results (`python -m drift.run` writes them; the strategies beyond
the paper carry their cost in new-model document encodes, and runs of the query-stream and
migration-timeline experiments add `stream` and `timeline` sections) and answers for a corpus of
N documents, an encoder giving R new-model documents/s, q queries/s of a given traffic shape
(query popularity, as the stream runs measured it) and a horizon of H days:

- quality: each strategy's metric divided by the full re-index's in the same run, mean over seeds;
  the target is such a fraction (0.95: 95% of what re-embedding everything gives);
- cost, in new-model document encodes, and when the target is reached:
  - upfront (full re-index, dual index, adapters, fusion, backfill): measured share of the corpus
    encoded x N, all before the target is reached: after encodes / R seconds;
  - on demand (rerank): the target holds from the first query; documents are encoded as traffic
    arrives, q x H x 86400 queries over the horizon (see `on_demand_share` for how the measured
    curve is read, extrapolated and capped), from the stream measured under the asked traffic
    shape; the traffic is the user's, not a choice, so strategies are compared within one shape
    (not given: each on-demand strategy under the costliest shape measured, a worst case);
  - background migration (timeline modes): the share migrated when the measured quality first
    reaches the target, x N, after that many encodes / R seconds;
- the recommendation: the cheapest strategy that reaches the target within the horizon (and, on
  demand, whose encoding keeps up with the traffic); ties go to the one reaching it earlier, then
  to the better one. Every assumption is printed with the answer (ASSUMPTIONS).

Exit status: 0 a recommendation, 1 nothing reaches the target within the horizon, 2 bad input or a
target no measured strategy reaches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from drift.core.errors import ConfigError, DataError
from drift.core.records import ResultRecord, design_labels
from drift.migration.measured import (
    mean_of,
    mean_sd,
    measure_name,
    priced_rows,
    stream_curve,
    streams_of,
    timeline_curves,
)
from drift.migration.stream import POPULARITIES, format_us, mean_latency

DEFAULT_METRICS = ("qrels/ndcg@10", "knn/recall@10")  # the first one measured is the default
DAY = 86_400.0
HOUR = 3_600.0
# Warn when the asked corpus is this many times larger (or smaller) than the measured one.
FAR = 10.0


class TargetUnreachableError(ConfigError):
    """No measured strategy reaches the quality target."""


# -- the question -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What the user asks: N documents, R new-model docs/s (None: the measured rate), q queries/s,
    a target as a fraction of the full re-index's quality, the metric (None: the default), the
    horizon in days, the traffic's query popularity (None: the worst measured) with its Zipf
    exponent (None: any measured), and the number of distinct queries the traffic draws from
    (None: a pool that grows with the corpus, as many per document as measured)."""

    corpus_size: int
    encode_rate: float | None
    query_rate: float
    target: float
    metric: str | None = None
    horizon_days: float = 30.0
    popularity: str | None = None
    zipf_s: float | None = None
    query_pool: int | None = None

    def __post_init__(self) -> None:
        checks = [
            ("--corpus-size", self.corpus_size, 1, "documents"),
            ("--query-rate", self.query_rate, 0, "queries/s"),
            ("--horizon-days", self.horizon_days, None, "days"),
            ("--target", self.target, None, "(a fraction of the full re-index's quality)"),
        ]
        if self.encode_rate is not None:
            checks.append(("--encode-rate", self.encode_rate, None, "documents/s"))
        if self.zipf_s is not None:
            checks.append(("--zipf-s", self.zipf_s, None, "(the Zipf exponent)"))
        if self.query_pool is not None:
            checks.append(("--query-pool", self.query_pool, 1, "distinct queries"))
        for name, value, low, unit in checks:
            ok = isinstance(value, int | float) and math.isfinite(value)
            ok = ok and (value >= low if low is not None else value > 0)
            if not ok:
                bound = f">= {low}" if low is not None else "> 0"
                raise ConfigError(f"{name} must be a finite number {bound} {unit}, got {value}")
        if self.target > 2:
            raise ConfigError(
                f"--target is a fraction of the full re-index's quality (e.g. 0.95), got "
                f"{self.target}; a percentage? use {self.target / 100:g}"
            )
        if self.popularity is not None and self.popularity not in POPULARITIES:
            raise ConfigError(
                f"--popularity must be one of {', '.join(POPULARITIES)}, got {self.popularity!r}"
            )
        if self.zipf_s is not None and self.popularity != "zipf":
            raise ConfigError("--zipf-s is the exponent of Zipf traffic: give --popularity zipf")

    @property
    def horizon_queries(self) -> float:
        return self.query_rate * self.horizon_days * DAY

    def traffic_text(self) -> str:
        if self.popularity != "zipf":
            return str(self.popularity)
        return "zipf, any measured exponent" if self.zipf_s is None else f"zipf s={self.zipf_s:g}"


@dataclass(frozen=True)
class Traffic:
    """The traffic shape a stream run served: query popularity and, for zipf, its exponent."""

    popularity: str
    zipf_s: float | None = None

    def __str__(self) -> str:
        if self.popularity != "zipf" or self.zipf_s is None:
            return self.popularity
        return f"zipf s={self.zipf_s:g}"

    def matches(self, request: Request) -> bool:
        """Whether this is the asked traffic (all shapes match when none is asked)."""
        if request.popularity is None:
            return True
        if request.popularity != self.popularity:
            return False
        return request.zipf_s is None or (
            self.zipf_s is not None and math.isclose(self.zipf_s, request.zipf_s)
        )


def traffic_of(record: ResultRecord) -> Traffic | None:
    """The traffic shape of a run's stream section; None for a run without a stream."""
    stream = record.stream
    if not stream:
        return None
    config = stream.get("config") or record.config.get("stream") or {}
    popularity = stream.get("popularity") or config.get("popularity")
    if popularity is None:
        raise DataError(f"{record.path}: its stream section records no query popularity")
    zipf_s = config.get("zipf_s") if popularity == "zipf" else None
    return Traffic(str(popularity), None if zipf_s is None else float(zipf_s))


# The stream settings that describe the traffic, not the strategy: the user does not choose them.
TRAFFIC_SETTINGS = ("popularity", "zipf_s")


def without_traffic(record: ResultRecord) -> ResultRecord:
    """The record with the traffic settings left out of its config, so that runs differing only
    in their traffic count as one design (their traffic is read from the stream section)."""
    config = record.config
    stream = config.get("stream")
    if not isinstance(stream, dict):
        return record
    kept = {k: v for k, v in stream.items() if k not in TRAFFIC_SETTINGS}
    return replace(record, data={**record.data, "config": {**config, "stream": kept}})


@dataclass
class Option:
    """One measured strategy (one design) priced for the request."""

    label: str
    strategy: str
    family: str
    experiment: str
    design: str
    accrual: str  # "upfront", "on demand" or "background migration"
    relative: float  # quality / full re-index, mean over seeds (best along a timeline)
    relative_sd: float | None
    seeds: list[Any]
    files: list[str]
    measured_n_corpus: int
    share: float  # of the asked corpus encoded by the new model (over the horizon, on demand)
    encodes: float
    encode_hours: float
    hours_to_target: float | None  # None: the target is never reached
    reaches: bool  # quality reaches the target
    in_time: bool  # ... within the horizon
    keeps_up: bool  # on-demand encoding keeps pace with the traffic
    extrapolation: float = 1.0  # on demand: horizon / the measured curve's length in queries
    traffic: str = ""  # on demand: the traffic shape of the stream priced ("": no stream)
    capped_at: float | None = None  # on demand: the share cap the cost reached (None: below it)
    shortfall: str = ""  # why it fails, by how much
    notes: list[str] = field(default_factory=list)
    curve: dict[str, Any] | None = None  # the measured curve behind the cost

    @property
    def ok(self) -> bool:
        return self.reaches and self.in_time and self.keeps_up


@dataclass
class Recommendation:
    request: Request
    metric: str
    encode_rate: float
    encode_rate_source: str
    context: dict[str, Any]
    options: list[Option]
    recommended: Option | None
    assumptions: list[str]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        def option(o: Option) -> dict[str, Any]:
            return {**asdict(o), "ok": o.ok}

        return {
            "request": {**asdict(self.request), "metric": self.metric},
            "encode_rate": self.encode_rate,
            "encode_rate_source": self.encode_rate_source,
            "horizon_queries": self.request.horizon_queries,
            "context": self.context,
            "recommended": option(self.recommended) if self.recommended else None,
            "reach": [option(o) for o in self.options if o.ok],
            "fail": [option(o) for o in self.options if not o.ok],
            "assumptions": self.assumptions,
            "warnings": self.warnings,
        }

    def text(self) -> str:
        r, ctx = self.request, self.context
        lines = [
            f"# drift recommend: cheapest way to {r.target:.0%} of the full re-index's "
            f"{self.metric}",
            "",
            f"Asked: {r.corpus_size:,} documents; new-model encoding {self.encode_rate:,.4g} "
            f"documents/s ({self.encode_rate_source}); {r.query_rate:,.4g} queries/s over "
            f"{r.horizon_days:g} days ({r.horizon_queries:,.0f} queries).",
            f"Measured: {ctx['dataset']}, {ctx['old_model']} -> {ctx['new_model']}; "
            f"{len(ctx['files'])} result file(s), seeds {ctx['seeds']}; corpus "
            f"{'/'.join(f'{n:,}' for n in ctx['n_corpus'])} documents measured vs "
            f"{r.corpus_size:,} asked.",
            f"Traffic: {ctx['traffic']}",
            "",
        ]
        best = self.recommended
        if best is None:
            lines.append(
                "No strategy reaches the target within the horizon at this encode rate and "
                "traffic; see why below (a higher encode rate or a longer horizon helps)."
            )
        else:
            lines.append(
                f"**Recommended: {best.label}** ({accrual(best)}): {best.relative:.3f} x the full "
                f"re-index; {best.encodes:,.0f} encodes ({best.share:.1%} of the corpus, "
                f"{duration(best.encode_hours)} of encoding); target reached "
                f"{when(best.hours_to_target)}."
            )
        reach = [o for o in self.options if o.ok]
        fail = [o for o in self.options if not o.ok]
        if reach:
            lines += ["", "## Strategies that reach the target (cheapest first)", ""]
            lines += [
                "| strategy | quality / full re-index | encodes | share of corpus | encoding "
                "time | target reached | cost accrues |",
                "|---|---:|---:|---:|---:|---|---|",
            ]
            lines += [
                f"| {o.label} | {quality(o)} | {o.encodes:,.0f} | {o.share:.1%} | "
                f"{duration(o.encode_hours)} | {when(o.hours_to_target)} | {accrual(o)} |"
                for o in reach
            ]
        if fail:
            lines += ["", "## Strategies that fall short", ""]
            lines += [
                "| strategy | quality / full re-index | short by | encodes |",
                "|---|---:|---|---:|",
            ]
            lines += [
                f"| {o.label} | {quality(o)} | {o.shortfall} | {o.encodes:,.0f} |" for o in fail
            ]
        if best is not None:
            lines += ["", f"## Measured points behind {best.label}", ""]
            lines += [f"- {note}" for note in best.notes]
            lines += [f"- result file: {f}" for f in best.files]
        lines += ["", "## Assumptions", ""] + [f"- {a}" for a in self.assumptions]
        if self.warnings:
            lines += ["", "## Warnings", ""] + [f"- WARNING: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def accrual(o: Option) -> str:
    return f"{o.accrual}, {o.traffic} traffic" if o.traffic else o.accrual


def quality(o: Option) -> str:
    sd = f" ± {o.relative_sd:.3f}" if o.relative_sd is not None else ""
    return f"{o.relative:.3f}{sd}"


def duration(hours: float) -> str:
    if hours <= 0:
        return "none"
    if hours < 1 / 60:
        return f"{hours * HOUR:.3g} s"
    if hours < 1:
        return f"{hours * 60:.3g} min"
    return f"{hours:.3g} h" if hours < 48 else f"{hours / 24:.3g} days"


def times(factor: float) -> str:
    return f"{factor:,.0f}x" if factor >= 10 else f"{factor:.2g}x"


def when(hours: float | None) -> str:
    if hours is None:
        return "never"
    return "from the first query" if hours <= 0 else f"after {duration(hours)}"


ASSUMPTIONS = [
    "Quality: each strategy's metric / the full re-index's in the same run, mean over seeds "
    "(± s.d. over seeds), measured at the measured corpus size and taken to hold at the asked "
    "one. For strategies that search the old index (status quo, adapters, fusion, backfill's old "
    "share) that is optimistic when the asked corpus is larger: at a fixed number of pairs their "
    "ARR fell as the corpus grew (results/corpus_size/: about 0.10 per tenfold corpus on "
    "synthetic items; OP 0.61 -> 0.49 from 1,000 to 5,818 real documents).",
    "Upfront strategies (full re-index, dual index, adapters, fusion, backfill): encodes = the "
    "measured share of the corpus encoded by the new model x the asked corpus size, all spent "
    "before the target is reached, at the encode rate; only encoding is timed (index builds and "
    "adapter fits are not). An adapter's pairs scale with the corpus as measured (a fixed Np "
    "would cost Np).",
    "Rerank (on demand): the target holds from the first query; documents are encoded as traffic "
    "arrives. The share of the corpus encoded after Q queries is read from the measured curve at "
    "Q x N_measured / N_asked queries (queries served per corpus document: a k times larger "
    "corpus draws its queries from a k times larger pool, so encodes per query stay as "
    "measured), extrapolated beyond the measured length at the curve's last measured slope (the "
    "measured mix of repeated and new queries goes on), and capped at the share the same runs' "
    "batch evaluation encoded with every distinct query of that pool served once: under this "
    "scaling no traffic can encode more (traffic more varied than the measured pool would, up "
    "to the whole corpus). A bounded (LRU) store re-encodes what it evicted: no cap then. "
    "Without a stream curve, the batch run's encodes grow linearly from its upfront part at "
    "their mean rate per distinct query, up to that share.",
    "Rerank with --query-pool P (the traffic's distinct queries; for a pool that does not grow "
    "with the corpus): Q queries of the asked traffic draw u distinct queries from P (expected "
    "count under that popularity), and each distinct query encodes K_eff fresh documents drawn "
    "at random from the corpus, so u queries cover 1 - (1 - K_eff / N)^u of it after the upfront "
    "share (an adapter's pairs); K_eff is fitted so that the measured pool covers the share the "
    "measured batch run encoded. Candidates that cluster more than on the measured corpus make "
    "this an overestimate (results/corpus_size_gcide/ measures its error).",
    "Traffic: the stream curve is the one measured under the asked traffic shape (--popularity, "
    "--zipf-s); it is the user's traffic, not a choice, so strategies are compared within it. "
    "Not given, each on-demand strategy is priced under the costliest traffic shape measured "
    "for it (a worst case over the measured shapes, not over all traffic). Batch runs serve each "
    "evaluation query once, whatever the traffic.",
    "Rerank keeps up when the traffic's on-demand encodes (queries/s x measured cold encodes "
    "per query) stay within the encode rate. A cold query (one that encodes anything) waits for "
    "its encodes: the stream's cold latency is the mean over those queries; the amortised "
    "latency spreads them over every query served, most of them warm; the added latency is "
    "each of these minus the status quo's time per query in the same stream.",
    "Background migration (timeline modes): quality depends on the share migrated, not on the "
    "clock; the migration stops at the share where the target is first reached.",
    "Ties in encodes go to the strategy that reaches the target earlier, then to the better one, "
    "then to one priced from a stream over one priced from the batch bound.",
]


# -- measured strategies ----------------------------------------------------------------------
@dataclass
class Measured:
    """One strategy of one design: its rows over seeds and the records they came from."""

    strategy: str
    family: str
    experiment: str
    design: str
    rows: list[dict[str, Any]]
    records: list[ResultRecord]


def on_demand_share(
    curve: dict[str, Any], queries: float, corpus_size: int, ceiling: float | None = None
) -> float:
    """Share of an asked corpus encoded after `queries`, from a measured stream curve (see
    ASSUMPTIONS: read per corpus document, extrapolated at the last slope), capped at `ceiling`
    (the share with every distinct measured query served) when given, else at 1 unless the
    curve already exceeds 1 (a bounded store that re-encodes)."""
    x = np.asarray(curve["queries"], dtype=float)
    y = np.asarray(curve["share_encoded"], dtype=float)
    at = measured_queries(curve, queries, corpus_size)
    if at <= x[-1] or x.size < 2:
        share = float(np.interp(at, x, y))
    else:
        share = y[-1] + (y[-1] - y[-2]) / (x[-1] - x[-2]) * (at - x[-1])
    if ceiling is not None:
        return float(min(share, ceiling))
    return float(min(share, 1.0) if y.max() <= 1.0 else share)


def all_distinct_share(m: Measured) -> float | None:
    """The batch share of m's runs (every distinct evaluation query served once): the most an
    unbounded store can encode from their query pool; None when a run's store was bounded."""
    bounded = any(
        ((r.stream or {}).get("config") or {}).get("capacity") is not None for r in m.records
    )
    return None if bounded else mean_of(m.rows, "share_encoded")


def measured_queries(curve: dict[str, Any], queries: float, corpus_size: int) -> float:
    """Queries served on the asked corpus as the same queries per document on the measured one."""
    return queries * curve["n_corpus"] / corpus_size


def expected_distinct(queries: float, pool: int, traffic: Traffic | None) -> float:
    """Expected distinct queries among `queries` drawn from a pool of `pool` under `traffic`
    (drift.migration.stream's shapes: zipf p_i ~ i^-s, uniform, sequential = no repeats; None,
    a batch run: each query once)."""
    if traffic is None or traffic.popularity == "sequential":
        return float(min(queries, pool))
    if traffic.popularity == "uniform":
        p = np.full(pool, 1.0 / pool)
    else:
        weights = np.arange(1, pool + 1, dtype=float) ** -(traffic.zipf_s or 1.0)
        p = weights / weights.sum()
    return float(np.sum(-np.expm1(queries * np.log1p(-p))))


def coverage_share(
    batch_share: float,
    upfront: float,
    pool: float,
    n_measured: float,
    n_asked: int,
    distinct: float,
) -> tuple[float, float]:
    """Share of an asked corpus encoded by `distinct` distinct queries, each drawing K_eff fresh
    documents at random (a coverage model): K_eff is fitted so that the measured pool of `pool`
    queries covers the measured batch share on the measured corpus; `upfront` (e.g. an adapter's
    pairs) is encoded first, on both corpora the same share. Returns (share, K_eff)."""
    rest = min(max((batch_share - upfront) / (1.0 - upfront), 0.0), 1.0) if upfront < 1 else 1.0
    if rest >= 1.0:
        return 1.0, float(n_measured)
    k_eff = n_measured * -math.expm1(math.log1p(-rest) / pool)
    covered = -math.expm1(distinct * math.log1p(-min(k_eff / n_asked, 1.0)))
    return upfront + (1.0 - upfront) * covered, k_eff


def some_points(xs: Sequence[float], ys: Sequence[float], fmt: str, n: int = 8) -> str:
    """Up to n (x, y) points of a curve, evenly spread, first and last included, for notes."""
    shown = np.unique(np.linspace(0, len(xs) - 1, min(n, len(xs))).round().astype(int))
    return ", ".join(fmt.format(xs[i], ys[i]) for i in shown)


# -- pricing ----------------------------------------------------------------------------------
def price_upfront(m: Measured, request: Request, rate: float) -> Option:
    relative, sd = mean_sd([row["relative"] for row in m.rows])
    share = mean_of(m.rows, "share_encoded") or 0.0
    return priced(
        m.strategy,
        m,
        request,
        rate,
        accrual="upfront",
        relative=relative,
        sd=sd,
        share=share,
        hours_to_target=share * request.corpus_size / rate / HOUR,
        notes=[f"measured share of the corpus encoded: {share:.3%} (mean over seeds)"],
    )


def price_on_demand(m: Measured, request: Request, rate: float) -> Option:
    relative, sd = mean_sd([row["relative"] for row in m.rows])
    queries = request.horizon_queries
    curve = stream_curve(m.records, m.strategy)
    if curve is not None:
        source = (
            f"stream curve (mean of {curve['n_streams']}; N = {curve['n_corpus']:,}, "
            f"{curve['n_unique_queries']:,} distinct queries in {curve['length']:,})"
        )
    else:
        curve, source = batch_curve(m.rows)
    ceiling = all_distinct_share(m)
    share = curve_share = on_demand_share(curve, queries, request.corpus_size, ceiling)
    at = measured_queries(curve, queries, request.corpus_size)
    extrapolation = at / curve["queries"][-1]
    cap = (
        "the whole corpus"
        if ceiling is None
        else f"{ceiling:.2%}, the batch share with every distinct measured query served"
    )
    pool_note = ""
    if request.query_pool is not None and ceiling is not None:
        traffic = traffic_of(m.records[0])
        distinct = expected_distinct(queries, request.query_pool, traffic)
        pool = mean_of(m.rows, "n_queries") or 1.0
        share, k_eff = coverage_share(
            ceiling, batch_upfront(m.rows), pool, curve["n_corpus"], request.corpus_size, distinct
        )
        pool_note = (
            f"query pool {request.query_pool:,} given: {queries:,.0f} queries of "
            f"{traffic or 'batch (each once)'} traffic draw {distinct:,.0f} distinct ones; each "
            f"encodes K_eff = {k_eff:.3g} fresh documents at random (fitted: {pool:,.0f} distinct "
            f"measured queries covered {ceiling:.2%} of {curve['n_corpus']:,.0f}) -> "
            f"{share:.2%} of the asked corpus"
        )
    notes = [
        f"{source}: share encoded at queries served "
        + some_points(curve["queries"], curve["share_encoded"], "{:,.0f}: {:.2%}"),
        f"{queries:,.0f} queries over the horizon read as {at:,.4g} measured queries: "
        + (
            "within the measured curve"
            if extrapolation <= 1
            else f"{times(extrapolation)} beyond the measured curve, at its last slope (capped "
            f"at {cap})"
        )
        + f" -> {curve_share:.2%} of the asked corpus"
        + (" (not used: the query pool is given)" if pool_note else ""),
    ]
    if pool_note:
        notes.append(pool_note)
        extrapolation = 1.0  # the coverage model reads no curve
    elif request.query_pool is not None:
        notes.append("query pool given but not used: these runs' store was bounded (LRU)")
    streams = streams_of(m.records, m.strategy)
    if streams:  # read with the names of every file version (drift.migration.stream.stream_latency)
        curve = {**curve, "latency_us": mean_latency(streams, m.strategy)}
        notes.append(latency_note(curve["latency_us"], len(streams), rate))
    option = priced(
        m.strategy,
        m,
        request,
        rate,
        accrual="on demand",
        relative=relative,
        sd=sd,
        share=share,
        hours_to_target=0.0,
        notes=notes,
        curve=curve,
    )
    option.extrapolation = extrapolation
    if ceiling is not None and share >= ceiling and not pool_note:
        option.capped_at = ceiling
    per_query = mean_of(m.rows, "cold_encodes_per_query")
    if per_query is not None:
        demand = request.query_rate * per_query
        candidates = mean_of(m.rows, "candidates_per_query") or per_query
        option.notes.append(
            f"on-demand load at the start: {per_query:.3g} cold encodes per query x "
            f"{request.query_rate:g} queries/s = {demand:,.4g} documents/s (at most "
            f"{candidates:.3g} per query when every candidate is cold)"
        )
        if demand > rate:
            option.keeps_up = False
            option.shortfall = join(
                option.shortfall,
                f"on-demand encoding needs {demand:,.4g} documents/s at first, "
                f"{times(demand / rate)} the encode rate",
            )
    return option


def latency_note(latency: dict[str, float | None], n_streams: int, rate: float) -> str:
    """The stream's latency per query in words (`drift.migration.stream.stream_latency`, mean
    over runs)."""
    cold, warm = latency["cold_query_mean"], latency["warm_mean"] or 0.0
    text = f"latency per query in the stream (mean of {n_streams} run(s), its measured encode rate)"
    if cold is None:
        return text + f": {format_us(warm)}, no query encoded anything"
    p99 = latency["cold_query_p99"]
    encodes = latency["cold_query_encodes"] or 0.0
    text += (
        f": cold {format_us(cold)} (mean over the {latency['queries_with_encodes']:.1%} of "
        f"queries that encoded anything, {encodes:.3g} documents each: "
        f"{format_us(warm + 1e6 * encodes / rate)} at {rate:,.4g} documents/s; p99 "
        + ("not recorded in these files" if p99 is None else format_us(p99))
        + f"; first query {format_us(latency['first_query'] or 0.0)}), warm {format_us(warm)}, "
        f"amortised over the stream {format_us(latency['amortised_mean'] or 0.0)}"
    )
    if latency["status_quo"] is not None:
        added = (latency[f"added_{k}"] for k in ("cold_query_mean", "warm_mean", "amortised_mean"))
        text += f"; added to the status quo's {format_us(latency['status_quo'])}: " + ", ".join(
            f"{name} +{format_us(value or 0.0)}"
            for name, value in zip(("cold", "warm", "amortised"), added, strict=True)
        )
    return text


def batch_curve(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Without a stream: a two-point curve from the batch run's cost (the upfront part, e.g. the
    adapter's pairs, at 0 queries; the batch share after its distinct evaluation queries), so
    the cost grows linearly at its mean encodes per distinct query up to the batch share (see
    ASSUMPTIONS). Returns (curve, where it came from)."""
    n_queries = float(np.mean([row["n_queries"] for row in rows]))
    n_corpus = float(np.mean([row["n_corpus"] for row in rows]))
    batch = mean_of(rows, "share_encoded") or 0.0
    upfront = batch_upfront(rows)
    curve = {"queries": [0.0, n_queries], "share_encoded": [upfront, batch], "n_corpus": n_corpus}
    return curve, "no stream measured: batch cost of the distinct evaluation queries"


def batch_upfront(rows: Sequence[dict[str, Any]]) -> float:
    """The share a batch run encoded before any query (e.g. the adapter's pairs): its share
    less the cold encodes its distinct evaluation queries paid."""
    n_queries = float(np.mean([row["n_queries"] for row in rows]))
    n_corpus = float(np.mean([row["n_corpus"] for row in rows]))
    batch = mean_of(rows, "share_encoded") or 0.0
    per_query = mean_of(rows, "cold_encodes_per_query") or 0.0
    return max(batch - per_query * n_queries / n_corpus, 0.0)


def price_migration(
    mode: str, curve: dict[str, Any], m: Measured, request: Request, rate: float
) -> Option:
    relative = np.asarray(curve["relative"])
    shares = np.asarray(curve["share_encoded"])
    hits = np.flatnonzero(relative >= request.target)
    first = int(hits[0]) if hits.size else int(np.argmax(relative))
    reached = (
        f"first reaches {request.target:g} at {shares[first]:.1%}"
        if hits.size
        else f"best {relative[first]:.3f} at {shares[first]:.1%}"
    )
    return priced(
        f"timeline/{mode}",
        m,
        request,
        rate,
        accrual="background migration",
        relative=float(relative[first]),
        sd=None,
        share=float(shares[first]),
        hours_to_target=float(shares[first]) * request.corpus_size / rate / HOUR,
        notes=[
            f"timeline (mean of {curve['n_timelines']}; N = {curve['n_corpus']:,}): quality / "
            "full re-index at share encoded "
            + some_points(shares, relative, "{:.1%}: {:.3f}")
            + f"; {reached}"
        ],
        curve={"share_encoded": shares.tolist(), "relative": relative.tolist()},
    )


def priced(
    strategy: str,
    m: Measured,
    request: Request,
    rate: float,
    *,
    accrual: str,
    relative: float,
    sd: float | None,
    share: float,
    hours_to_target: float,
    notes: list[str],
    curve: dict[str, Any] | None = None,
) -> Option:
    """The Option of a strategy measured in `m` (its seeds and files) costing `share` of the
    asked corpus and reaching `relative` quality after `hours_to_target`."""
    reaches = relative >= request.target
    in_time = reaches and hours_to_target <= request.horizon_days * 24
    shortfall = ""
    if not reaches:
        shortfall = f"quality {request.target - relative:.3f} below the target"
    elif not in_time:
        shortfall = (
            f"reaches the target after {duration(hours_to_target)}, beyond the "
            f"{request.horizon_days:g}-day horizon"
        )
    return Option(
        label=strategy,
        strategy=strategy,
        family=m.family,
        experiment=m.experiment,
        design=m.design,
        accrual=accrual,
        relative=relative,
        relative_sd=sd,
        seeds=sorted({row["seed"] for row in m.rows}, key=str),
        files=sorted(str(r.path) for r in m.records),
        measured_n_corpus=int(max(row["n_corpus"] for row in m.rows)),
        share=share,
        encodes=share * request.corpus_size,
        encode_hours=share * request.corpus_size / rate / HOUR,
        hours_to_target=hours_to_target if reaches else None,
        reaches=reaches,
        in_time=in_time,
        keeps_up=True,
        shortfall=shortfall,
        notes=notes,
        curve=curve,
    )


def join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# -- the recommendation -----------------------------------------------------------------------
def select_context(
    rows: list[dict[str, Any]], dataset: str | None, new_model: str | None
) -> list[dict[str, Any]]:
    """The rows of the one (dataset, model pair) asked for, or the only one present."""
    if dataset is not None:
        rows = [r for r in rows if r["dataset"] == dataset]
    if new_model is not None:
        rows = [
            r
            for r in rows
            if r["new_model"] == new_model or r["new_model"].endswith("/" + new_model)
        ]
    contexts = sorted({(r["dataset"], r["old_model"], r["new_model"]) for r in rows})
    if not contexts:
        raise DataError(
            f"no measured strategy for dataset={dataset!r} new model={new_model!r} in the results"
        )
    if len(contexts) > 1:
        listed = "; ".join(f"--dataset {d} --new-model {n} (from {o})" for d, o, n in contexts)
        raise ConfigError(f"the results hold several datasets or model pairs; choose one: {listed}")
    return rows


def choose_metric(rows: list[dict[str, Any]], metric: str | None) -> str:
    measured = sorted({measure_name(r) for r in rows if r["relative"] is not None})
    if metric is None:
        for name in DEFAULT_METRICS:
            if name in measured:
                return name
    if metric not in measured:
        raise ConfigError(
            f"metric {metric!r} was not measured with a full re-index in these runs; "
            f"measured: {', '.join(measured)}"
        )
    return metric


def measured_rate(records: Sequence[ResultRecord], given: float | None) -> tuple[float, str]:
    if given is not None:
        return given, "given"
    rates = [r.stream["encode_rate"] for r in records if r.stream]
    if not rates:
        raise ConfigError(
            "--encode-rate (new-model documents/s) is required: no stream section in the "
            "results measured one (measure it with drift cost --measure)"
        )
    return float(np.mean(rates)), f"measured in {len(rates)} stream run(s)"


def recommend(
    records: Sequence[ResultRecord],
    request: Request,
    *,
    dataset: str | None = None,
    new_model: str | None = None,
) -> Recommendation:
    """Price every measured strategy for `request` and pick the cheapest reaching the target.

    Raises DataError without usable records, ConfigError for an ambiguous or unmeasured choice,
    TargetUnreachableError when no measured strategy reaches the target at all.
    """
    # Runs that differ only in their traffic are one design, priced per traffic shape below.
    rows = [row for record in records for row in priced_rows(without_traffic(record))]
    rows = select_context(rows, dataset, new_model)
    warnings = []
    if any(not r["debug"] for r in rows):
        rows = [r for r in rows if not r["debug"]]
    else:
        warnings.append("only debug (smoke) runs were found: their numbers are not results")
    metric = choose_metric(rows, request.metric)
    rows = [r for r in rows if measure_name(r) == metric and r["relative"] is not None]
    files = sorted({r["file"] for r in rows})
    by_file = {record.file: record for record in records}
    rate, rate_source = measured_rate([by_file[f] for f in files], request.encode_rate)
    request = Request(**{**asdict(request), "encode_rate": rate, "metric": metric})
    traffic = {f: traffic_of(by_file[f]) for f in files}
    shapes = sorted({t for t in traffic.values() if t is not None}, key=str)
    asked = [t for t in shapes if t.matches(request)]
    if request.popularity is not None and shapes and not asked:
        raise ConfigError(
            f"no stream run measured {request.traffic_text()} traffic; measured: "
            f"{', '.join(map(str, shapes))} (run experiment=query_stream with stream.popularity "
            "and stream.zipf_s set to yours)"
        )
    if request.popularity is not None and not shapes:
        warnings.append(
            f"--popularity {request.traffic_text()} is not used: no stream run measured any "
            "traffic, so on-demand costs come from the batch runs (each query served once)"
        )

    groups: dict[tuple[str, str, Traffic | None], Measured] = {}
    for row in rows:
        key = (row["strategy"], row["group"], traffic[row["file"]])
        if key not in groups:
            groups[key] = Measured(
                row["strategy"], row["family"], row["experiment"], row["group"], [], []
            )
        groups[key].rows.append(row)
    for m in groups.values():
        m.records = [by_file[f] for f in sorted({row["file"] for row in m.rows})]

    options = []
    for strategy, design in dict.fromkeys((s, d) for s, d, _ in groups):
        by_traffic = {t: m for (s, d, t), m in groups.items() if (s, d) == (strategy, design)}
        option = price_in_traffic(by_traffic, asked, request, rate)
        if option is not None:
            options.append(option)
    designs = {m.design: m for m in groups.values()}  # one strategy's rows name the design
    for design, m in designs.items():
        design_files = sorted({r["file"] for r in rows if r["group"] == design})
        for mode, curve in timeline_curves([by_file[f] for f in design_files], metric).items():
            options.append(price_migration(mode, curve, m, request, rate))
    label_options(options, design_labels(without_traffic(by_file[f]) for f in files))

    best = max(options, key=lambda o: o.relative)
    if not best.reaches:
        raise TargetUnreachableError(
            f"no measured strategy reaches {request.target:g} x the full re-index's {metric}; "
            f"the best is {best.label} at {best.relative:.3f}. Only the full re-index delivers "
            "the new model's quality (1 by definition); no strategy measured here goes beyond "
            "it by that much"
        )
    options.sort(key=rank)
    recommended = options[0] if options[0].ok else None

    measured_n = sorted({r["n_corpus"] for r in rows})
    ratio = request.corpus_size / max(measured_n)
    if ratio > FAR or ratio < 1 / FAR:
        warnings.append(
            f"the asked corpus ({request.corpus_size:,}) is {times(ratio)} the largest measured "
            f"one ({max(measured_n):,}): quality measured there may not hold (a larger corpus "
            "puts more competitors into every candidate list and merge), and costs are scaled "
            "as the assumptions say; measure closer to the asked size before trusting this"
        )
    if recommended is not None and recommended.extrapolation > FAR and not recommended.capped_at:
        warnings.append(
            f"{recommended.label}'s cost is extrapolated {times(recommended.extrapolation)} beyond "
            "its measured curve (see the assumptions); a longer measured stream would firm it up"
        )
    context = {
        "dataset": rows[0]["dataset"],
        "old_model": rows[0]["old_model"],
        "new_model": rows[0]["new_model"],
        "n_corpus": measured_n,
        "files": [str(by_file[f].path) for f in files],
        "seeds": ",".join(str(s) for s in sorted({r["seed"] for r in rows}, key=str)),
        "traffic": traffic_context(request, shapes, asked),
    }
    return Recommendation(
        request=request,
        metric=metric,
        encode_rate=rate,
        encode_rate_source=rate_source,
        context=context,
        options=options,
        recommended=recommended,
        assumptions=ASSUMPTIONS,
        warnings=warnings,
    )


def price_in_traffic(
    by_traffic: dict[Traffic | None, Measured],
    asked: Sequence[Traffic],
    request: Request,
    rate: float,
) -> Option | None:
    """One strategy of one design priced in the asked traffic: its runs without a stream as
    they are; its stream runs under each asked traffic shape they measured, the costliest kept
    (several shapes are asked when none is given: a worst case). None when its stream runs
    measured none of the asked shapes."""
    priced_in = {
        t: (price_on_demand if m.family == "rerank" else price_upfront)(m, request, rate)
        for t, m in by_traffic.items()
        if t is None or t in asked
    }
    if not priced_in:
        return None
    traffic, worst = max(priced_in.items(), key=lambda item: rank(item[1]))
    if traffic is not None and worst.accrual == "on demand":
        worst.traffic = str(traffic)
        if len(priced_in) > 1:
            worst.notes.insert(
                0,
                f"traffic not given: priced under {traffic}, the costliest of the shapes "
                "measured for it ("
                + ", ".join(f"{t}: {o.encodes:,.0f} encodes" for t, o in priced_in.items())
                + ")",
            )
    return worst


def traffic_context(request: Request, shapes: Sequence[Traffic], asked: Sequence[Traffic]) -> str:
    """The traffic the on-demand costs were priced in, in words."""
    if not shapes:
        return (
            "no stream run measured any; on-demand costs come from the batch runs (each "
            "evaluation query served once), whatever the traffic."
        )
    measured = ", ".join(map(str, shapes))
    if request.popularity is None:
        return (
            f"not given; each on-demand strategy is priced under the costliest traffic shape "
            f"measured for it (measured: {measured}): a worst case over them. Give "
            "--popularity (and --zipf-s) to price yours."
        )
    text = f"{request.traffic_text()} (given; measured: {measured})"
    if len(asked) > 1:
        text += f"; the costliest of {', '.join(map(str, asked))} for each on-demand strategy"
    return text + "."


def label_options(options: list[Option], designs: dict[str, str]) -> None:
    """Strategy names, with the design they were measured in added where one name was measured
    in several: its experiment, and the settings that set it apart when the experiment has several
    designs (`designs`, from drift.core.records.design_labels)."""
    for strategy in {o.strategy for o in options}:
        mine = [o for o in options if o.strategy == strategy]
        if len({o.design for o in mine}) < 2:
            continue
        for o in mine:
            o.label = f"{strategy} [{designs.get(o.design, o.experiment)}]"


def rank(option: Option) -> tuple[Any, ...]:
    """Sort key: those reaching the target cheapest first (ties: earlier, then better, then
    priced from a stream rather than the batch bound), then the others by quality, best first."""
    if option.ok:
        hours = option.hours_to_target or 0.0
        batch_bound = (
            option.accrual == "on demand" and not option.traffic
        )  # priced without a stream
        return (0, round(option.encodes), hours, -option.relative, batch_bound, option.label)
    return (1, -option.relative, round(option.encodes), option.label)
