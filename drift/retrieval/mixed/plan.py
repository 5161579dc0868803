"""The variants of the mixed strategies one experiment runs (the `eval.mixed` config block)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from drift.core.errors import ConfigError
from drift.core.rankings import StrategyResult
from drift.retrieval.index import IndexCache, IndexSpec
from drift.retrieval.mixed import encode_cost
from drift.retrieval.mixed.backfill import BackfillSetting, backfill
from drift.retrieval.mixed.fusion import fusion
from drift.retrieval.mixed.rerank import RERANK_SOURCES, DocumentVectors, rerank, union_candidates
from drift.retrieval.strategies import timed_search

MIXED_FAMILIES = ("rerank", "fusion", "backfill")


def settings_grid(values: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the listed values, keys in the given order."""
    grid: list[dict[str, Any]] = [{}]
    for key, options in values.items():
        grid = [{**point, key: option} for point in grid for option in options]
    return grid


def run_mixed_strategies(
    settings: dict[str, Any],
    families: Sequence[str],
    *,
    old_index: faiss.Index,
    spec: IndexSpec,
    index_cache: IndexCache,
    q_old: np.ndarray,
    q_new: np.ndarray,
    x_old: np.ndarray,
    x_new: np.ndarray,
    adapters: dict[str, Any],
    k: int,
    seed: int,
    pair_rows: np.ndarray,
) -> dict[str, StrategyResult]:
    """Every configured variant of the named families (the `eval.mixed` block of the config).

    `settings["adapter"]` names the fitted adapter behind the adapter and union rerank sources,
    fusion, and a backfill base of "adapter"; its `pair_rows` (corpus rows encoded by both models
    to fit it) count towards the cost of every variant that uses it.
    """
    unknown = set(families) - set(MIXED_FAMILIES)
    if unknown:
        raise ConfigError(f"unknown mixed strategies {sorted(unknown)}; known: {MIXED_FAMILIES}")
    adapter_name = settings["adapter"]
    if adapter_name not in adapters:
        raise ConfigError(
            f"eval.mixed.adapter={adapter_name!r} is not among the fitted adapters "
            f"{sorted(adapters)}; name one of them"
        )
    mapped = adapters[adapter_name].transform(q_new)
    n = x_new.shape[0]
    results: dict[str, StrategyResult] = {}
    searched: dict[tuple[str, int], tuple[np.ndarray, float]] = {}

    def ranking(source: str, depth: int) -> np.ndarray:
        """Row ids [nq, depth] of the status quo or the adapter in the old index."""
        key = (source, depth)
        if key not in searched:
            queries = q_old if source == "status_quo" else mapped
            (_, ids), seconds = timed_search(old_index, queries, min(depth, n), spec)
            searched[key] = (ids, seconds)
        return searched[key][0]

    def search_time(*keys: tuple[str, int]) -> float:
        return sum(searched[key][1] for key in keys)

    if "rerank" in families:
        grid = settings_grid(
            {"source": settings["rerank"]["sources"], "depth": settings["rerank"]["depths"]}
        )
        for point in grid:
            source, depth = point["source"], int(point["depth"])
            if source not in RERANK_SOURCES:
                raise ConfigError(f"unknown rerank source {source!r}; use one of {RERANK_SOURCES}")
            fallback_source = "adapter" if source == "adapter" else "status_quo"
            searched_sources = ["status_quo", "adapter"] if source == "union" else [source]
            lists = [ranking(s, depth) for s in searched_sources]
            candidates = union_candidates(*lists) if source == "union" else lists[0]
            name = f"rerank/{source}@{depth}"
            results[name] = rerank(
                name,
                candidates,
                ranking(fallback_source, max(depth, k)),
                q_new,
                DocumentVectors(
                    lambda rows: x_new[rows],
                    n,
                    already_encoded=None if source == "status_quo" else pair_rows,
                ),
                k,
                search_seconds=search_time(*((s, depth) for s in searched_sources)),
                params={
                    "family": "rerank",
                    "source": source,
                    "depth": depth,
                    "adapter": adapter_name,
                },
            )

    if "fusion" in families:
        depth = int(settings["fusion"]["depth"])
        grid = settings_grid(
            {
                "normalisation": settings["fusion"]["normalisations"],
                "weight": settings["fusion"]["weights"],
            }
        )
        for point in grid:
            name = f"fusion/{point['normalisation']}@{float(point['weight']):g}"
            results[name] = fusion(
                name,
                ranking("status_quo", depth),
                ranking("adapter", depth),
                q_old,
                mapped,
                x_old,
                weight=float(point["weight"]),
                normalisation=point["normalisation"],
                k=k,
                n_pairs=len(pair_rows),
                search_seconds=search_time(("status_quo", depth), ("adapter", depth)),
                params={"family": "fusion", "depth": depth, "adapter": adapter_name, **point},
            )

    if "backfill" in families:
        cfg = settings["backfill"]
        grid = settings_grid(
            {
                "base": cfg["bases"],
                "order": cfg["orders"],
                "merge": cfg["merges"],
                "fraction": cfg["fractions"],
            }
        )
        for point in grid:
            base = adapter_name if point["base"] == "adapter" else point["base"]
            if base not in ("status_quo", adapter_name):
                raise ConfigError(
                    f"unknown backfill base {point['base']!r}; use status_quo or adapter"
                )
            setting = BackfillSetting(
                float(point["fraction"]), point["order"], point["merge"], base
            )
            results[setting.name] = backfill(
                setting,
                old_index=old_index,
                base_queries=q_old if base == "status_quo" else mapped,
                q_new=q_new,
                x_new=x_new,
                x_old=x_old,
                spec=spec,
                index_cache=index_cache,
                k=k,
                seed=seed,
                n_folds=int(cfg["folds"]),
                pair_rows=None if base == "status_quo" else pair_rows,
            )
    return results


def paper_strategy_costs(name: str, n_corpus: int, n_pairs: int) -> dict[str, Any]:
    """New-model document encodes of the paper's strategies ({} for the diagnostic ceiling)."""
    if name in ("full_reindex", "dual_index"):
        return encode_cost(n_corpus, n_corpus)
    if name.startswith("adapter/"):
        return encode_cost(n_pairs, n_corpus)
    if name in ("status_quo", "misaligned"):
        return encode_cost(0, n_corpus)
    return {}
