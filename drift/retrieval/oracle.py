"""The per-query oracle: the best old-space query vector for each evaluated query (a diagnostic).

For each query, a vector q in the old space is optimised so that the old corpus vectors of the
new model's exact top-k (the kNN ground truth) score above every other old corpus vector. It
answers one question: can the old index serve the new model's neighbourhoods at all, whatever
the map that produces the query? It uses the ground truth, is never deployable, and costs no
new-model document encode (it is no strategy one could run).

Optimisation (torch, CPU): q starts at the `ceiling` query (the normalised mean old vector of the
true top documents, drift/retrieval/strategies.py) and takes `steps` Adam steps on a smooth
top-k surrogate: for each true document t, -log(exp(s_t / T) / (exp(s_t / T) + sum over the
other documents j of exp(s_j / T))), s the cosine of q with the old vectors, T the temperature,
averaged over the true documents. The other documents are a shortlist per query (the `shortlist`
best old documents for the start, plus any that later intrude), so one step costs
nq x (shortlist + k) x d rather than nq x N x d. After each round the best vector per query
(highest recall within the shortlist, the earliest on ties) is searched exactly over the whole
old corpus and kept only if its exact recall beats the query's best so far (a small shortlist can
be won by a vector that loses globally); documents outside the shortlist that entered its top k
join the shortlist, and the queries short of full recall run another round, up to `rounds`. The
exact recall reached is recorded with the settings (`OracleSettings`, `optimise_queries`' info).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from drift.core.vectors import l2_normalize
from drift.retrieval.index import exact_search

CHUNK = 256  # queries optimised together (bounds the [chunk, candidates, d] gather)


@dataclass(frozen=True)
class OracleSettings:
    """The optimiser's settings, stored in the result file beside what it reached."""

    k: int = 10  # true top-k to put first (the ceiling's CEILING_DOCS)
    steps: int = 150  # Adam steps per round
    lr: float = 0.05  # Adam's step on the (unit-length at start) query vector
    temperature: float = 0.02  # of the surrogate's softmax over cosines
    shortlist: int = 256  # other old documents per query, from the start vector's top list
    rounds: int = 3  # exact check + shortlist growth, for queries short of full recall


def optimise_queries(
    old_corpus: np.ndarray,
    truth: np.ndarray,
    start: np.ndarray,
    settings: OracleSettings = OracleSettings(),
) -> tuple[np.ndarray, dict[str, Any]]:
    """(unit query vectors [nq, d], info) for the true top-k rows `truth` [nq, >= k] (-1 padded).

    A query keeps a round's vector only when it raises its exact recall, so no query ends below
    its start. info: the settings, the exact recall@k over the whole old corpus (mean and share
    of queries at 1.0) at the start and after each round, and the seconds taken.
    """
    began = time.perf_counter()
    truth = np.asarray(truth)[:, : settings.k]
    queries = l2_normalize(start)
    depth = min(settings.shortlist + settings.k, old_corpus.shape[0])
    _, ranked = exact_search(old_corpus, queries, depth, device="cpu")
    shortlist = [_candidates(row, true) for row, true in zip(ranked, truth, strict=True)]
    recall = _recall(ranked[:, : settings.k], truth)
    history = [_summary(recall)]  # round 0: the start
    for _ in range(settings.rounds):
        todo = np.flatnonzero(recall < 1)
        if todo.size == 0:
            break
        tried = queries.copy()
        for begin in range(0, todo.size, CHUNK):
            rows = todo[begin : begin + CHUNK]
            tried[rows] = _optimise(
                old_corpus, truth[rows], queries[rows], shortlist, rows, settings
            )
        found = _top(old_corpus, tried, settings.k)
        tried_recall = _recall(found, truth)
        better = tried_recall > recall  # a query keeps its best vector by exact recall so far
        queries[better], recall[better] = tried[better], tried_recall[better]
        for row in todo:  # documents that intruded join the shortlist
            shortlist[row] = _candidates(np.concatenate([shortlist[row], found[row]]), truth[row])
        history.append(_summary(recall))
    info = {
        "settings": asdict(settings),
        "exact_recall": history[-1],
        "rounds": history,  # rounds[0]: the start (the ceiling's query)
        "seconds": time.perf_counter() - began,
        "n_queries": int(truth.shape[0]),
    }
    return queries, info


def _top(old_corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return exact_search(old_corpus, queries, k, device="cpu")[1]


def _summary(recall: np.ndarray) -> dict[str, float]:
    return {"recall_mean": float(recall.mean()), "share_full": float((recall == 1).mean())}


def _candidates(rows: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The true rows first, then the other (distinct, valid) shortlist rows."""
    true = true[true >= 0]
    others = rows[(rows >= 0) & ~np.isin(rows, true)]
    return np.concatenate([true, np.unique(others)])


def _recall(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per query: the share of its valid true rows among `found`."""
    valid = truth >= 0
    hits = ((found[:, :, None] == truth[:, None, :]).any(axis=1) & valid).sum(axis=1)
    return hits / np.maximum(valid.sum(axis=1), 1)


def _optimise(old_corpus, truth, start, shortlist, rows, settings: OracleSettings) -> np.ndarray:
    """Adam on the surrogate for one chunk of queries; the best unit vector per query."""
    import torch  # here, not at the top: the other strategies need no torch

    width = max(len(shortlist[r]) for r in rows)
    ids = np.zeros((rows.size, width), dtype=np.int64)
    is_true = np.zeros((rows.size, width), dtype=bool)
    valid = np.zeros((rows.size, width), dtype=bool)
    for i, r in enumerate(rows):
        cand = shortlist[r]
        n_true = int((truth[i] >= 0).sum())
        ids[i, : cand.size], valid[i, : cand.size], is_true[i, :n_true] = cand, True, True
    docs = torch.from_numpy(np.ascontiguousarray(old_corpus[ids]))  # [chunk, width, d]
    is_true_t, valid_t = torch.from_numpy(is_true), torch.from_numpy(valid)
    negatives = valid_t & ~is_true_t
    n_true = is_true_t.sum(dim=1).clamp_min(1)
    k = min(settings.k, width)
    q = torch.tensor(start, dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([q], lr=settings.lr)
    best = start.copy()
    best_recall = np.full(rows.size, -1.0)
    for _ in range(settings.steps + 1):
        scores = torch.einsum("qd,qcd->qc", torch.nn.functional.normalize(q, dim=1), docs)
        with torch.no_grad():
            top = scores.masked_fill(~valid_t, -torch.inf).topk(k, dim=1).indices
            recall = (is_true_t.gather(1, top).sum(dim=1) / n_true).numpy()
            better = recall > best_recall
            best[better] = q.detach().numpy()[better]
            best_recall = np.maximum(best_recall, recall)
        if (best_recall >= 1).all():
            break
        logits = scores / settings.temperature
        rest = torch.logsumexp(logits.masked_fill(~negatives, -torch.inf), dim=1, keepdim=True)
        per_true = torch.logaddexp(logits, rest) - logits  # -log softmax of t against the rest
        loss = (per_true * is_true_t).sum(dim=1) / n_true
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
    return l2_normalize(best)
