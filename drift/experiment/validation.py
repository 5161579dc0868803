"""The resolved config checked as a whole before anything loads, so that a bad value fails in a
second with every problem named, not after minutes of encoding with the first one.

`validate_config(cfg)` reads the plain config (drift.cli.config.to_plain) and raises one
ConfigError that lists each problem as `key: problem (got value)`: the type and range of every
setting the run reads, and the combinations it cannot serve. Settings that code elsewhere
already checks (IndexSpec, TimelineConfig, the adapters, the logger, the pair role) are checked
by calling it, listed as `key: its message`. `validate_against_data` adds what
needs the data's size, once the data is loaded and before any model is. Hydra has already
refused unknown keys (struct mode); the encoder and dataset blocks are their factories' to check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drift.core.errors import ConfigError
from drift.core.provenance import cuda_status
from drift.data.pairs import judged_mask, pair_exclusions
from drift.data.subsample import CORPUS_SUBSETS
from drift.data.types import RetrievalData
from drift.experiment.analyses import timeline_config
from drift.experiment.checks import check_pair_role_settings
from drift.experiment.fitting import build_adapters
from drift.experiment.stages import PROTOCOLS
from drift.experiment.tracking import wandb_mode
from drift.migration.stream import POPULARITIES
from drift.retrieval.index import IndexSpec, check_device
from drift.retrieval.mixed.backfill import MERGES, ORDERS
from drift.retrieval.mixed.fusion import NORMALISATIONS
from drift.retrieval.mixed.plan import MIXED_FAMILIES
from drift.retrieval.mixed.rerank import RERANK_SOURCES
from drift.retrieval.strategies import PAPER_STRATEGIES
from drift.scoring.metrics import UNJUDGED

RUN_MODES = ("full", "smoke")
BACKFILL_BASES = ("status_quo", "adapter")


@dataclass(frozen=True)
class Rule:
    """What one setting must be: `accepts(value)`, and `needs` said when it is not."""

    accepts: Callable[[Any], bool]
    needs: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int, *, nullable: bool = False) -> Rule:
    return Rule(
        lambda v: (nullable and v is None) or (_is_int(v) and v >= minimum),
        f"an integer >= {minimum}" + (" or null" if nullable else ""),
    )


def number(low: float, high: float, *, closed: str = "[)", nullable: bool = False) -> Rule:
    """A finite number between `low` and `high`, ends included as `closed` says ("[)": the
    low end only; high may be math.inf)."""

    def accepts(v: Any) -> bool:
        if nullable and v is None:
            return True
        if not _is_number(v):
            return False
        above = v >= low if closed[0] == "[" else v > low
        below = v <= high if closed[1] == "]" else v < high
        return above and below

    interval = f"{closed[0]}{low:g}, {high:g}{closed[1]}"
    return Rule(accepts, f"a number in {interval}" + (" or null" if nullable else ""))


def flag(*, nullable: bool = False) -> Rule:
    return Rule(
        lambda v: (nullable and v is None) or isinstance(v, bool),
        "true or false" + (" or null" if nullable else ""),
    )


def one_of(options: Sequence[str]) -> Rule:
    return Rule(lambda v: v in options, f"one of {', '.join(options)}")


def list_of(item: Rule) -> Rule:
    """A non-empty list whose every item `item` accepts."""
    return Rule(
        lambda v: isinstance(v, list) and bool(v) and all(item.accepts(x) for x in v),
        f"a non-empty list, each item {item.needs}",
    )


# Settings every run reads.
ALWAYS: tuple[tuple[str, Rule], ...] = (
    ("seed", integer(0)),
    ("run_mode", one_of(RUN_MODES)),
    ("offline", flag(nullable=True)),
    ("data_limits.max_corpus", integer(1, nullable=True)),
    ("data_limits.max_queries", integer(1, nullable=True)),
    ("data_limits.corpus_subset", one_of(CORPUS_SUBSETS)),
    ("encode.batch_size", integer(1, nullable=True)),
    ("encode.chunk_size", integer(1)),
    ("encode.show_progress", flag()),
    ("encode.num_shards", integer(1)),
    ("encode.shard", integer(0)),
    ("encode.require_cached", flag()),
    ("eval.protocols", list_of(one_of(PROTOCOLS))),
    ("eval.ks", list_of(integer(1))),
    ("eval.n_boot", integer(1)),
    ("eval.unjudged", one_of(tuple(UNJUDGED))),
    ("adapter.n_pairs_fraction", number(0, 1, closed="(]", nullable=True)),
    ("adapter.val_fraction", number(0, 1)),
    ("adapter.gate_fraction", number(0, 1)),
    ("adapter.exclude_judged", flag()),
    ("adapter.dsm", list_of(flag())),
    ("stream.enabled", flag()),
    ("timeline.enabled", flag()),
)
# Settings of the query stream, read when stream.enabled.
STREAM: tuple[tuple[str, Rule], ...] = (
    ("stream.length", integer(1)),
    ("stream.popularity", one_of(POPULARITIES)),
    ("stream.encode_rate", number(0, math.inf, closed="()", nullable=True)),
    ("stream.capacity", integer(1, nullable=True)),
    ("stream.demand.enabled", flag()),
)
# Settings of demand-driven migration, read when stream.demand.enabled.
DEMAND: tuple[tuple[str, Rule], ...] = (
    ("stream.demand.sources", list_of(one_of(RERANK_SOURCES))),
    ("stream.demand.depth", integer(1)),
    ("stream.demand.new_depth", integer(0, nullable=True)),
    ("stream.demand.window", integer(1)),
    ("stream.demand.background", number(0, math.inf)),
)
# Settings of each strategy family beyond the paper, read when eval.strategies names it.
MIXED: dict[str, tuple[tuple[str, Rule], ...]] = {
    "rerank": (
        ("eval.mixed.rerank.sources", list_of(one_of(RERANK_SOURCES))),
        ("eval.mixed.rerank.depths", list_of(integer(1))),
    ),
    "fusion": (
        ("eval.mixed.fusion.normalisations", list_of(one_of(NORMALISATIONS))),
        ("eval.mixed.fusion.weights", list_of(number(0, 1, closed="[]"))),
        ("eval.mixed.fusion.depth", integer(1)),
    ),
    "backfill": (
        ("eval.mixed.backfill.fractions", list_of(number(0, 1, closed="[]"))),
        ("eval.mixed.backfill.orders", list_of(one_of(ORDERS))),
        ("eval.mixed.backfill.merges", list_of(one_of(MERGES))),
        ("eval.mixed.backfill.bases", list_of(one_of(BACKFILL_BASES))),
        ("eval.mixed.backfill.folds", integer(2)),
    ),
}


class Problems:
    """The problems found so far in one config, raised together by `raise_any`."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.found: list[str] = []

    def value(self, key: str) -> Any:
        node: Any = self.cfg
        for part in key.split("."):
            node = node[part]
        return node

    def add(self, key: str, problem: str, value: Any) -> None:
        self.found.append(f"{key}: {problem} (got {value!r})")

    def check(self, key: str, rule: Rule) -> None:
        """A problem unless the setting `key` is what `rule` needs."""
        value = self.value(key)
        if not rule.accepts(value):
            self.add(key, f"must be {rule.needs}", value)

    def call(self, key: str, check: Callable[[], Any]) -> Any:
        """What `check()` returns, or None and its ConfigError as the problem of `key` (its
        message as it is where it names the key itself)."""
        try:
            return check()
        except ConfigError as err:
            message = str(err)
            self.found.append(message if message.startswith(key) else f"{key}: {message}")
            return None

    def raise_any(self, when: str) -> None:
        if self.found:
            count = f"{len(self.found)} problem{'s' if len(self.found) > 1 else ''}"
            raise ConfigError(f"{count} in the config, found {when}: " + "; ".join(self.found))


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Refuse a config the run would fail on, or misread, before anything loads: one
    ConfigError naming every problem (see the module docstring)."""
    problems = Problems(cfg)
    for key, rule in ALWAYS:
        problems.check(key, rule)
    _check_pairs(problems)
    _check_shard(problems)
    _check_torch_device(problems)
    spec = problems.call("index", lambda: IndexSpec.from_dict(cfg["index"]))
    if spec is not None:
        problems.call("index.device", lambda: check_device(spec))
    problems.call("logger", lambda: wandb_mode(cfg["logger"]))
    adapters = problems.call("adapter.methods", lambda: build_adapters(cfg["adapter"]))
    _check_strategies(problems, None if adapters is None else sorted(adapters))
    if cfg["stream"]["enabled"] is True:
        _check_stream(problems)
    if cfg["timeline"]["enabled"] is True:
        problems.check("timeline.n_boot", integer(1))
        problems.call(
            "timeline", lambda: timeline_config(cfg["timeline"], cfg["adapter"]["methods"])
        )
    problems.raise_any("before anything loaded")


def _check_pairs(problems: Problems) -> None:
    """Np, its split and its role: the `adapter` block less its methods."""
    cfg = problems.cfg["adapter"]
    if cfg["n_pairs_fraction"] is None:
        problems.check("adapter.n_pairs", integer(2))
    fractions = problems.value("adapter.val_fraction"), problems.value("adapter.gate_fraction")
    if all(_is_number(f) for f in fractions) and sum(fractions) >= 1:
        problems.add(
            "adapter.val_fraction + adapter.gate_fraction",
            "must be < 1, leaving pairs to train on",
            sum(fractions),
        )
    problems.call(
        "adapter.pair_role", lambda: check_pair_role_settings(cfg["pair_role"], problems.cfg)
    )


def _check_shard(problems: Problems) -> None:
    """encode.shard names one of the encode.num_shards shards (python -m drift.encode)."""
    shard, num_shards = problems.value("encode.shard"), problems.value("encode.num_shards")
    if _is_int(shard) and _is_int(num_shards) and num_shards >= 1 and shard >= num_shards:
        problems.add(
            "encode.shard",
            f"must be below encode.num_shards ({num_shards}): shards are 0..{num_shards - 1}",
            shard,
        )


def _check_torch_device(problems: Problems) -> None:
    """device cuda or cuda:N needs CUDA that torch can use here (auto falls back to the CPU)."""
    device = problems.value("device")
    if isinstance(device, str) and device.startswith("cuda"):
        status = cuda_status()
        if not status["available"]:
            problems.add(
                "device", f"CUDA is not usable here ({status['reason']}); use auto or cpu", device
            )


def _check_strategies(problems: Problems, adapter_names: list[str] | None) -> None:
    """eval.strategies names known strategies, and each family beyond the paper it names has
    settings it can run with; `adapter_names`: the adapters the run fits (None: unknown, their
    settings being wrong)."""
    strategies = problems.value("eval.strategies")
    if not isinstance(strategies, list) or not strategies:
        problems.add("eval.strategies", "must be a non-empty list of strategy names", strategies)
        return
    named = {f"adapter/{name}" for name in adapter_names or ()}
    known = {*PAPER_STRATEGIES, *MIXED_FAMILIES, *named}
    # adapter/<name> is known only when the adapters are (see adapter.methods otherwise)
    unknown = [
        s
        for s in strategies
        if s not in known and not (adapter_names is None and str(s).startswith("adapter/"))
    ]
    if unknown:
        problems.add(
            "eval.strategies",
            f"names unknown strategies {unknown}; known: {', '.join(sorted(known))}",
            strategies,
        )
    families = [s for s in MIXED_FAMILIES if s in strategies]
    if not families:
        return
    mixed_adapter = problems.value("eval.mixed.adapter")
    if adapter_names is not None and mixed_adapter not in adapter_names:
        problems.add(
            "eval.mixed.adapter",
            f"must name an adapter the run fits ({', '.join(adapter_names)}), as "
            f"{', '.join(families)} need one",
            mixed_adapter,
        )
    for family in families:
        for key, rule in MIXED[family]:
            problems.check(key, rule)


def _check_stream(problems: Problems) -> None:
    for key, rule in STREAM:
        problems.check(key, rule)
    if problems.value("stream.popularity") == "zipf":
        problems.check("stream.zipf_s", number(0, math.inf, closed="()"))
    if problems.value("stream.encode_rate") is None:
        problems.check("stream.encode_rate_sample", integer(1))
    if problems.value("stream.demand.enabled") is True:
        _check_demand(problems)


def _check_demand(problems: Problems) -> None:
    """Demand-driven migration reuses the candidates of rerank/<source>@<depth>: the run must
    compute them (eval.strategies names rerank, with those sources and that depth)."""
    found = len(problems.found)
    for key, rule in DEMAND:
        problems.check(key, rule)
    if len(problems.found) > found:
        return
    sources, depth = problems.value("stream.demand.sources"), problems.value("stream.demand.depth")
    strategies = problems.value("eval.strategies")
    rerank = problems.value("eval.mixed.rerank")
    if not isinstance(strategies, list) or "rerank" not in strategies:
        problems.add(
            "stream.demand.enabled",
            "demand-driven migration reuses lazy re-rank's candidates: eval.strategies must "
            "name rerank",
            strategies,
        )
        return
    missing = [s for s in sources if s not in rerank["sources"]]
    if missing:
        problems.add(
            "stream.demand.sources",
            f"{missing} not in eval.mixed.rerank.sources {rerank['sources']}: each source's "
            "candidates come from that rerank strategy",
            sources,
        )
    if depth not in rerank["depths"]:
        problems.add(
            "stream.demand.depth",
            f"must be one of eval.mixed.rerank.depths {rerank['depths']}: its candidates come "
            f"from rerank/<source>@{depth}",
            depth,
        )


def validate_against_data(cfg: Mapping[str, Any], data: RetrievalData) -> None:
    """Refuse, once the data is loaded and before any model is, what the data's size rules out:
    an index the corpus is too small to train (IVF-PQ's codebooks), a sequential stream longer
    than the queries, pairs left too few once the evaluated queries' answers are excluded. A
    backfill's sub-index over a small share of the corpus needs no check: it falls back to exact
    search, with a warning (drift.retrieval.mixed.backfill)."""
    problems = Problems(cfg)
    spec = IndexSpec.from_dict(cfg["index"])
    n_corpus = len(data.corpus)
    if n_corpus < spec.min_vectors:
        problems.add(
            "index.pq_nbits",
            f"IVF-PQ trains its codebooks on at least 2**pq_nbits = {spec.min_vectors} vectors, "
            f"but the corpus holds {n_corpus} items; use index=hnsw or index=flat, or lower it",
            spec.pq_nbits,
        )
    stream = cfg["stream"]
    sequential = stream["enabled"] and stream["popularity"] == "sequential"
    if sequential and stream["length"] > len(data.queries):
        problems.add(
            "stream.length",
            f"a sequential stream serves each of the {len(data.queries)} queries at most once, "
            "so it must be at most that",
            stream["length"],
        )
    pairs = cfg["adapter"]
    if pairs["pair_role"] != "query_log" and pairs["exclude_judged"]:
        eligible = int((~pair_exclusions(data, judged_mask(data))).sum())
        if eligible * (1 - pairs["val_fraction"] - pairs["gate_fraction"]) < 2:
            problems.add(
                "adapter.exclude_judged",
                f"only {eligible} of the {n_corpus} corpus items are neither an evaluated query's "
                "relevant document nor equal to a query, too few to train an adapter (labels "
                "such as same-folder or same-class make most items relevant); set it to false "
                "to draw pairs from them (the result file counts pairs.judged_in_pairs), or "
                "evaluate fewer queries",
                pairs["exclude_judged"],
            )
    problems.raise_any(f"once the data ({data.name}) was loaded")
