"""Re-index gate: serve new-model queries through the adapter, keep old-model queries, or re-embed?

    drift gate --adapter-dir ADAPTER_DIR --pairs gate_pairs.npz --threshold 0.9 [--json gate.json]

Inputs: a fitted adapter and held-out pairs encoded by both models: items never used to fit
it, neither for training nor for early stopping (a run of this harness saves such pairs as
gate_pairs.npz: the `adapter.gate_fraction` of its pairs that no adapter saw). They come in an
.npz (read with allow_pickle=False) holding `new` [n, d_new] and `old` [n, d_old], and
optionally `old_corpus` [N, d_old]: old-model vectors of other corpus items (e.g. read back
from the old index).

Estimate: the paper's kNN protocol, on the held-out pool. Each held-out item is a query; the truth
is its k nearest *other* held-out items by the new model (what a re-embedded index would return);
the adapter's answer is the k nearest other held-out items by old vector, queried with
adapter(new vector). ARR@k is the mean recall@k of that answer (drift.scoring.metrics.knn_metrics),
with a percentile bootstrap CI over queries. The status quo (keeping the old model for queries) is
estimated the same way from the same pairs: each item's old vector queries the other items' old
vectors, against the same new-model truth. In both, a held-out item stands for a query (in the
role the pairs were encoded in), and their difference is paired over the same queries, with its
own bootstrap CI. On the rows of results/gate_calibration/calibration.csv (depth-scaled pool
estimates beside the kNN R@10 each run measured on its real queries), the estimated difference
had the sign of the measured one for 92% of 668 adapters, and 47 of the 51 misses favoured the
adapter.

Decision, with the rule's figure of each estimate (the CI's lower bound for rule "ci_low", the
default; the point estimate for rule "mean"):
- keep serving through the adapter: the adapter reaches the threshold and its ARR@k is not below
  the status quo's (point estimates);
- serve old-model queries (the status quo): the adapter is below the status quo although one of
  them reaches the threshold, or the status quo reaches it and the adapter does not; the old model
  then answers well enough without re-embedding anything;
- re-index now: neither reaches the threshold.
The report says which figures decided.

Corpus scale: a pool of n items is far sparser than a corpus of N, so neighbour sets are easier
to recover in it, and ARR@k measured at depth k in the pool overstates ARR@k at corpus scale.
Given the corpus size (`--corpus-size N`), the gate measures at pool depth
k' = max(1, round(k n / N)) instead: a pool that is a random n/N of the corpus holds about
k n / N of each item's corpus top k, so the overlap of the two top-k' sets in the pool estimates
the overlap of the two top-k sets in the corpus. Over the adapters of this harness's committed
runs, this cut the estimate's mean error against the measured ARR from +.11 to +.01
(drift/report/gate_calibration.py, results/gate_calibration/). Where k n / N < 1/2 depth 1 is the
shallowest the pool allows: the estimate then stops following N and overstates ARR as N grows
(+.085 with 4,000 pairs for 1M synthetic items, results/corpus_size/), and the report says so,
with the N / (2k) pairs that would match. Without the corpus size the report measures at depth k
and says it is optimistic.
With `old_corpus`, the gate also reports self-hit@k at corpus scale: how often the adapted query
finds its own item's old vector in the top k among the corpus's old vectors (a check that needs
no new-model corpus vectors).

Exit status of the command: 0 keep serving through the adapter, 1 re-index, 3 serve old-model
queries, 2 bad input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drift.adapters.base import Adapter
from drift.core.errors import ConfigError, DataError, VectorError
from drift.core.files import atomic_savez, clean_stale
from drift.core.vectors import check_vectors
from drift.retrieval.index import exact_search
from drift.scoring.metrics import knn_metrics, summarize

Rule = Literal["ci_low", "mean"]
KEEP, REINDEX, SERVE_OLD = "keep_serving_through_adapter", "reindex_now", "serve_old_model_queries"
EXIT_STATUS = {KEEP: 0, REINDEX: 1, SERVE_OLD: 3}  # 2: bad input


@dataclass(frozen=True)
class GateReport:
    decision: str
    threshold: float
    rule: str
    k: int
    confidence: float
    n_pairs: int
    corpus_size: int | None
    pool_k: int  # the depth measured in the pool: k, or k scaled by n / corpus_size
    arr: dict[str, float | int]  # the estimate that decides, at depth pool_k
    arr_at_k: dict[str, float | int]  # the pool at depth k (optimistic; = arr without scaling)
    status_quo: dict[str, float | int]  # old-model queries, at depth pool_k
    gain_over_status_quo: dict[str, float | int]  # adapter - status quo, paired per query
    self_hit: dict[str, float | int] | None
    reasons: list[str] = field(default_factory=list)

    @property
    def keep(self) -> bool:
        return self.decision == KEEP

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lines = [f"decision: {self.decision}"] + [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines)


def leave_one_out_knn(corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows of `corpus` for each query row i, never returning row i itself."""
    _, ids = exact_search(corpus, queries, k + 1, device="cpu")
    not_self = ids != np.arange(ids.shape[0])[:, None]
    first_k = np.argsort(~not_self, axis=1, kind="stable")[:, :k]  # non-self ids, in rank order
    return np.take_along_axis(ids, first_k, axis=1)


def pool_depth(k: int, n: int, corpus_size: int | None) -> int:
    """The depth in a pool of n held-out items that matches top-k in a corpus of `corpus_size`
    (the module docstring); k itself without a corpus size."""
    if corpus_size is None:
        return k
    if corpus_size < 1:
        raise ConfigError(
            f"corpus size (--corpus-size) must be a positive number of items, got {corpus_size}"
        )
    return min(k, max(1, round(k * n / corpus_size)))


class HeldOutPool:
    """Held-out pairs as a small retrieval corpus in which each item queries the others.

    The new model's neighbours (the truth) and the status quo's answers are searched once per
    depth, however many adapters are scored against them.
    """

    def __init__(
        self,
        x_new: np.ndarray,
        x_old: np.ndarray,
        *,
        n_boot: int,
        confidence: float,
        seed: int,
    ) -> None:
        self.x_new, self.x_old = x_new, x_old
        self.stats = {"n_boot": n_boot, "alpha": 1.0 - confidence, "seed": seed}
        self._truths: dict[int, np.ndarray] = {}
        self._status_quo: dict[int, np.ndarray] = {}

    def recalls(self, queries: np.ndarray, depth: int) -> np.ndarray:
        """Per-query recall@depth of old-space answers to `queries` against the new model's
        neighbours."""
        if depth not in self._truths:
            self._truths[depth] = leave_one_out_knn(self.x_new, self.x_new, depth)
        found = leave_one_out_knn(self.x_old, queries, depth)
        return knn_metrics(found, self._truths[depth], (depth,))[f"recall@{depth}"]

    def summary(self, values: np.ndarray) -> dict[str, float | int]:
        return summarize(values, **self.stats)

    def status_quo_recalls(self, depth: int) -> np.ndarray:
        """`recalls` of each item's own old vector as the query: keeping the old model."""
        if depth not in self._status_quo:
            self._status_quo[depth] = self.recalls(self.x_old, depth)
        return self._status_quo[depth]

    def versus_status_quo(self, mapped: np.ndarray, depth: int) -> dict[str, dict]:
        """ARR@depth of adapted queries, the status quo's, and their paired difference."""
        adapter, status_quo = self.recalls(mapped, depth), self.status_quo_recalls(depth)
        return {
            "arr": self.summary(adapter),
            "status_quo": self.summary(status_quo),
            "gain_over_status_quo": self.summary(adapter - status_quo),
        }


def decide(
    arr: Mapping[str, float], status_quo: Mapping[str, float], threshold: float, rule: Rule
) -> str:
    """KEEP, SERVE_OLD or REINDEX from the two estimates (the module docstring)."""
    figure = "ci_low" if rule == "ci_low" else "mean"
    adapter_reaches = arr[figure] >= threshold
    if adapter_reaches and arr["mean"] >= status_quo["mean"]:
        return KEEP
    if adapter_reaches or status_quo[figure] >= threshold:
        return SERVE_OLD
    return REINDEX


def evaluate_gate(
    adapter: Adapter,
    x_new: np.ndarray,
    x_old: np.ndarray,
    *,
    old_corpus: np.ndarray | None = None,
    corpus_size: int | None = None,
    threshold: float = 0.9,
    k: int = 10,
    rule: Rule = "ci_low",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> GateReport:
    """Estimate the adapter's ARR@k on held-out pairs and decide (see the module docstring)."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"gate threshold must be in (0, 1], got {threshold}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"gate confidence must be in (0, 1), got {confidence}")
    if rule not in ("ci_low", "mean"):
        raise ConfigError(f"gate rule must be 'ci_low' or 'mean', got {rule!r}")
    x_new = check_vectors(x_new, name="held-out new-model vectors", dim=adapter.d_in)
    x_old = check_vectors(x_old, name="held-out old-model vectors", dim=adapter.d_out)
    n = x_new.shape[0]
    if x_old.shape[0] != n:
        raise VectorError(f"held-out pairs: {n} new-model rows but {x_old.shape[0]} old-model rows")
    if n <= k:
        raise DataError(
            f"the gate needs more than k={k} held-out pairs (got {n}): each query's "
            f"truth is its {k} nearest other held-out items"
        )
    pool_k = pool_depth(k, n, corpus_size)
    pool = HeldOutPool(x_new, x_old, n_boot=n_boot, confidence=confidence, seed=seed)
    mapped = adapter.transform(x_new)
    estimate = pool.versus_status_quo(mapped, pool_k)
    arr, status_quo = estimate["arr"], estimate["status_quo"]
    arr_at_k = arr if pool_k == k else pool.summary(pool.recalls(mapped, k))
    self_hit = None
    if old_corpus is not None:
        old_corpus = check_vectors(old_corpus, name="old corpus vectors", dim=adapter.d_out)
        searched = np.concatenate([old_corpus, x_old])
        _, ids = exact_search(searched, mapped, k, device="cpu")
        own_row = old_corpus.shape[0] + np.arange(n)
        self_hit = pool.summary((ids == own_row[:, None]).any(axis=1).astype(np.float64))

    decision = decide(arr, status_quo, threshold, rule)
    reasons = [
        _verdict(decision, arr, status_quo, threshold, rule, k, confidence),
        _versus_status_quo(arr, status_quo, estimate["gain_over_status_quo"], k, confidence),
    ]
    if self_hit is not None:
        reasons.append(
            f"self-hit@{k} at corpus scale ({old_corpus.shape[0]} old corpus vectors + the pool): "
            f"{self_hit['mean']:.3f} ({_ci(self_hit, confidence)}) of adapted queries find their "
            "own item's old vector in the top k"
        )
    reasons.append(_scale_note(n, corpus_size, k, pool_k, arr_at_k))
    return GateReport(
        decision=decision,
        threshold=threshold,
        rule=rule,
        k=k,
        confidence=confidence,
        n_pairs=n,
        corpus_size=corpus_size,
        pool_k=pool_k,
        arr=arr,
        arr_at_k=arr_at_k,
        status_quo=status_quo,
        gain_over_status_quo=estimate["gain_over_status_quo"],
        self_hit=self_hit,
        reasons=reasons,
    )


def pool_estimates(
    adapters: Mapping[str, Adapter],
    x_new: np.ndarray,
    x_old: np.ndarray,
    *,
    corpus_size: int,
    k: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The gate's estimates for each fitted adapter on a run's held-out pairs (the figures
    `evaluate_gate` reports, the pool searched once for all adapters), as result files record
    them (drift/report/gate_calibration.py sets them beside the ARR the run measured).
    `{"skipped": reason}` when the pool is too small for depth k."""
    n = x_new.shape[0]
    if n <= k:
        return {
            "skipped": f"needs more than k={k} held-out pairs, got {n} (a run holds out "
            "adapter.gate_fraction of its pairs for the gate)"
        }
    pool_k = pool_depth(k, n, corpus_size)
    pool = HeldOutPool(x_new, x_old, n_boot=n_boot, confidence=0.95, seed=seed)
    estimates = {}
    for name, adapter in adapters.items():
        mapped = adapter.transform(x_new)
        estimate = pool.versus_status_quo(mapped, pool_k)  # at depth pool_k: --corpus-size
        at_k = estimate["arr"] if pool_k == k else pool.summary(pool.recalls(mapped, k))
        estimates[name] = {
            "k": k,
            "n_pool": n,
            "corpus_size": corpus_size,
            "pool_k": pool_k,
            **estimate,  # arr, status_quo, gain_over_status_quo
            "arr_at_k": at_k,  # drift gate without --corpus-size
        }
    return estimates


# -- a run's held-out pairs ---------------------------------------------------------------------
@dataclass(frozen=True)
class GatePairs:
    """The held-out pairs of a run's gate, and which fitted adapters have seen them."""

    new: np.ndarray
    old: np.ndarray
    source: str  # "gate": no adapter saw them; "validation": adapters tuned on them did
    seen_by: tuple[str, ...]

    def why_not(self, name: str) -> str:
        return (
            f"{name} chose its settings (early stopping or its penalty) on the validation pairs "
            "the gate would use; set adapter.gate_fraction > 0 to hold out pairs no adapter sees"
        )


def gate_pairs(
    gate: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    adapters: Mapping[str, Adapter],
) -> GatePairs:
    """The gate's own split (new, old) when the run holds one out (adapter.gate_fraction > 0);
    otherwise (the paper's 80/20 split) the validation pairs, held out from every adapter that
    does not stop early on them."""
    if gate[0].shape[0]:
        return GatePairs(*gate, source="gate", seen_by=())
    seen = tuple(name for name, adapter in adapters.items() if adapter.uses_validation)
    return GatePairs(*val, source="validation", seen_by=seen)


def save_gate_pairs(folder: Path, held_out: GatePairs) -> dict[str, str]:
    """Save the held-out pairs with the names of the adapters that have seen them, for
    `drift gate --pairs` (which refuses those): {"gate_pairs": path}, or {} with no pairs."""
    if not held_out.new.size:
        return {}
    clean_stale(folder)  # what a killed save left
    seen_by = np.array(held_out.seen_by, dtype=str)
    arrays = {"new": held_out.new, "old": held_out.old, "seen_by": seen_by}
    return {"gate_pairs": str(atomic_savez(folder / "gate_pairs.npz", arrays))}


def gate_estimates(
    adapters: Mapping[str, Adapter],
    held_out: GatePairs,
    *,
    corpus_size: int,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """A result record's `gate` section: what `drift gate` estimates for each adapter from pairs
    it has not seen; `{"skipped": why}` for the adapters that have seen them."""
    estimates = pool_estimates(
        {name: a for name, a in adapters.items() if name not in held_out.seen_by},
        held_out.new,
        held_out.old,
        corpus_size=corpus_size,
        n_boot=n_boot,
        seed=seed,
    )
    estimates.update({name: {"skipped": held_out.why_not(name)} for name in held_out.seen_by})
    return estimates


def measured_recall(record: Mapping[str, Any], strategy: str, k: int) -> float | None:
    """A result record's kNN R@k of one strategy (ARR@k as the run measured it); None where the
    run did not measure it."""
    block = record["metrics"].get("protocols", {}).get("knn", {}).get("strategies", {})
    metrics = (block.get(strategy) or {}).get("metrics") or {}
    return (metrics.get(f"recall@{k}") or {}).get("mean")


def summarise_gate(record: Mapping[str, Any]) -> str:
    """A result record's gate estimates (`pool_estimates`) beside the ARR@k the run measured, as
    `drift.run` prints them."""
    gate = record["gate"]
    if "skipped" in gate:
        return f"drift gate: not estimated ({gate['skipped']})"
    lines = [
        "| adapter | gate estimate [95% CI] | minus status quo [95% CI] | pool at depth k "
        "| measured |",
        "|---|---:|---:|---:|---:|",
    ]
    estimated = {name: est for name, est in gate.items() if "skipped" not in est}
    for name, est in estimated.items():
        real = measured_recall(record, f"adapter/{name}", est["k"])
        gain = est.get("gain_over_status_quo")  # absent from older result files
        lines.append(
            f"| {name} | {_with_ci(est['arr'], '.3f')} | "
            f"{'n/a' if gain is None else _with_ci(gain, '+.3f')} | "
            f"{est['arr_at_k']['mean']:.3f} | {'n/a' if real is None else f'{real:.3f}'} |"
        )
    lines += [
        f"| {name} | not estimated: {est['skipped']} | | | |"
        for name, est in gate.items()
        if "skipped" in est
    ]
    first = next(iter(estimated.values()), None)
    if first is not None:
        lines += [
            "",
            f"- ARR@{first['k']} as `drift gate --corpus-size {first['corpus_size']}` estimates "
            f"it from the {first['n_pool']} held-out pairs alone: at depth {first['pool_k']} "
            f"in the pool (results/gate_calibration/); 'pool at depth k' is the estimate "
            f"without --corpus-size; minus status quo: the estimate less the status quo's on "
            f"the same pairs (below 0, the gate serves old-model queries); measured = kNN "
            f"R@{first['k']} of this run's queries",
        ]
    return "\n".join(lines)


def _scale_note(
    n: int, corpus_size: int | None, k: int, pool_k: int, arr_at_k: dict[str, float | int]
) -> str:
    if corpus_size is None:
        return (
            f"estimated at depth {k} in a pool of {n} held-out items: neighbours are easier to "
            "recover in a pool than in the corpus, so read this ARR as optimistic for corpus "
            "scale; --corpus-size N measures at the depth that matches the corpus"
        )
    scaled = k * n / corpus_size
    if pool_k == k:
        return (
            f"estimated at depth {k}: the pool of {n} held-out items is at least as dense as a "
            f"corpus of {corpus_size} (k n / N = {scaled:.2f}), so no depth scaling applies"
        )
    note = (
        f"estimated at depth {pool_k} in a pool of {n} held-out items, the depth that matches "
        f"top-{k} in a corpus of {corpus_size} (k n / N = {scaled:.2f}); at depth {k} the pool "
        f"gives {arr_at_k['mean']:.3f}, which overstates corpus-scale ARR"
    )
    if scaled < 0.5:
        note += (
            f"; the pool is too small for that depth (depth 1 matches top-{corpus_size / n:.0f} "
            "of the corpus), so the estimate no longer follows the corpus size and may be "
            "optimistic (in results/corpus_size/ it was exact at k n / N = 0.4 and high by .04 "
            f"at 0.16 and .085 at 0.04); {-(-corpus_size // (2 * k))} held-out pairs would match"
        )
    return note


def _with_ci(summary: Mapping[str, float], spec: str) -> str:
    """'mean [ci_low, ci_high]', each formatted with `spec` (e.g. '.3f')."""
    return f"{summary['mean']:{spec}} [{summary['ci_low']:{spec}}, {summary['ci_high']:{spec}}]"


def _ci(summary: dict[str, float | int], confidence: float) -> str:
    return f"{confidence:.0%} CI [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def _verdict(
    decision: str,
    arr: Mapping[str, float],
    status_quo: Mapping[str, float],
    threshold: float,
    rule: str,
    k: int,
    confidence: float,
) -> str:
    """Why `decide` chose `decision`, in the rule's figures."""
    estimate = f"ARR@{k} {arr['mean']:.3f} ({_ci(arr, confidence)}, {arr['n']} queries)"
    old = f"the status quo's {status_quo['mean']:.3f} ({_ci(status_quo, confidence)})"
    where = "at the CI's lower bound" if rule == "ci_low" else "as a point estimate"
    figure = "ci_low" if rule == "ci_low" else "mean"
    if decision == KEEP:
        return (
            f"keep serving through the adapter: {estimate} reaches the threshold {threshold} "
            f"{where} and is not below {old}"
        )
    if decision == SERVE_OLD:
        if arr["mean"] < status_quo["mean"]:
            return (
                f"serve old-model queries: the adapter is worse than keeping the old model, "
                f"{estimate} against {old}"
                + (
                    f", which reaches the threshold {threshold} {where}"
                    if status_quo[figure] >= threshold
                    else f"; the adapter reaches the threshold {threshold} {where}, and the "
                    "status quo, better on average, serves at least as well"
                )
            )
        return (
            f"serve old-model queries: {old} reaches the threshold {threshold} {where}; the "
            f"adapter's {estimate} does not {where}"
        )
    if rule == "ci_low" and arr["mean"] >= threshold:
        return (
            f"re-index: {estimate} passes the threshold {threshold} only as a point estimate; "
            "its CI reaches below it, so the data cannot show the adapter is good enough "
            f"(more held-out pairs narrow the CI); nor does {old} reach it"
        )
    return f"re-index: {estimate} is below the threshold {threshold}, and so is {old} {where}"


def _versus_status_quo(
    arr: Mapping[str, float],
    status_quo: Mapping[str, float],
    gain: Mapping[str, float],
    k: int,
    confidence: float,
) -> str:
    base = (
        f"status quo (old-model query into the old index) recovers {status_quo['mean']:.3f} "
        f"of the new model's top-{k}"
    )
    paired = f"{gain['mean']:+.3f} ({_ci(gain, confidence)}, paired over the same queries)"
    if gain["mean"] <= 0:
        return (
            f"{base}; the adapter ({arr['mean']:.3f}) does no better than keeping the old "
            f"model for queries: {paired}"
        )
    return f"{base}; the adapter adds {paired}"


# -- command line -------------------------------------------------------------------------------
def load_pairs(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as err:  # e.g. an object array, which would need unpickling
        raise DataError(f"{path}: cannot read without unpickling ({err})") from err
    missing = {"new", "old"} - set(arrays)
    if missing:
        raise DataError(
            f"{path} lacks array(s) {sorted(missing)}; it holds {sorted(arrays)} "
            "(expected new, old and optionally old_corpus)"
        )
    return arrays


def refuse_seen_pairs(
    adapter_dir: str | Path, pairs_path: str | Path, pairs: Mapping[str, np.ndarray]
) -> None:
    """A run's gate_pairs.npz names the adapters tuned on those pairs (`seen_by`, when it holds
    its validation split: early stopping, a penalty grid): their estimate would flatter them."""
    name = Path(adapter_dir).name
    if name in set(pairs.get("seen_by", np.array([], dtype=str)).tolist()):
        raise DataError(
            f"{pairs_path}: adapter {name!r} was tuned on these pairs, so they are not "
            "held out for it; rerun with adapter.gate_fraction > 0 for pairs no adapter sees"
        )
