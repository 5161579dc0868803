"""Side check: each saved adapter of one run, its queries' recall@10 among all corpus items (the
evaluation, exact search here) and among the run's pair items only (the resolution the ranking
adapters are trained and validated at).

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python \
        results/ranking_adapter/side_checks/resolution.py <a result file of the run>.json

Rebuilds the run's data, vectors (from the embedding cache) and pairs from the config stored in
the result file, loads the adapters it saved (`artifacts`), and prints one JSON line per adapter.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from drift.adapters import load_adapter
from drift.encoders.cache import encode_corpus_and_queries
from drift.experiment.stages import RunContext, draw_pairs, load_models, load_run_data, pair_pool
from drift.retrieval.index import exact_search


def recall10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((found[:, :, None] == truth[:, None, :]).any(axis=1).sum(axis=1) / 10))


def main(path: str) -> None:
    record = json.loads(Path(path).read_text())
    run = RunContext.from_config(record["config"])
    loaded, data = load_run_data(run)
    models = load_models(run, data)
    vectors = encode_corpus_and_queries(models, data.corpus, data.queries, run.timings)
    pairs = draw_pairs(run, pair_pool(run, loaded, data), data, vectors, models)
    rows = np.concatenate([pairs.split.train, pairs.split.val])  # corpus rows of the pair items
    _, truth_all = exact_search(vectors.x_new, vectors.q_new, 10)
    _, truth_pairs = exact_search(vectors.x_new[rows], vectors.q_new, 10)
    for name, folder in record["artifacts"].items():
        if name not in record["adapters"]:
            continue  # the gate's pairs
        mapped = load_adapter(folder).transform(vectors.q_new)
        _, found_all = exact_search(vectors.x_old, mapped, 10)
        _, found_pairs = exact_search(vectors.x_old[rows], mapped, 10)
        print(
            json.dumps(
                {
                    "adapter": name,
                    "seed": record["seed"],
                    "recall@10/all_items": recall10(found_all, truth_all),
                    "recall@10/pair_items": recall10(found_pairs, truth_pairs),
                    "n_items": int(vectors.x_old.shape[0]),
                    "n_pair_items": int(rows.size),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1])
