"""One experiment of the paper: encode, sample pairs, fit adapters, index, answer, score.

`run_experiment(config)` takes the resolved config as a plain dict (see drift.cli.config.to_plain)
and returns the result record that drift.core.records writes to JSON. It is the only place where
the stages meet, one call per step of the method; the steps that read the config are in
drift.experiment (stages, checks, fitting, analyses, outcome), and each stage takes plain values.
drift.run has validated the config before calling it (drift.experiment.validation).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from drift.core.seeding import seed_everything
from drift.encoders.cache import encode_corpus_and_queries
from drift.experiment.analyses import run_analyses
from drift.experiment.checks import check_index_dims, check_pair_role, warn_uncentred_procrustes
from drift.experiment.fitting import build_adapters, fit_adapters
from drift.experiment.outcome import run_outcome
from drift.experiment.stages import (
    RunContext,
    draw_pairs,
    estimate_gate,
    evaluate_run,
    load_models,
    load_run_data,
    pair_pool,
    run_all_strategies,
    save_artifacts,
    scored_truth,
)
from drift.experiment.validation import validate_against_data
from drift.migration.gate import gate_pairs
from drift.retrieval.index import IndexCache, IndexSpec, exact_search, index_pair
from drift.scoring.drift_measures import drift_measures


def run_experiment(cfg: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    run = RunContext.from_config(cfg)
    seed_everything(run.seed)
    timings = run.timings
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        loaded, data = load_run_data(run)
        validate_against_data(cfg, data)
        spec = IndexSpec.from_dict(cfg["index"])
        models = load_models(run, data)
        check_pair_role(str(cfg["adapter"]["pair_role"]), cfg, models.corpus, models.query)
        check_index_dims(spec, models.corpus)
        pool = pair_pool(run, loaded, data)
        del loaded  # the dataset before the run's limits: only the query_log pool reads it
        vectors = encode_corpus_and_queries(models, data.corpus, data.queries, timings)
        with timings("drift_measures"):
            drift = drift_measures(vectors.x_old, vectors.x_new, seed=run.seed_for("drift"))
        warn_uncentred_procrustes(drift, cfg["adapter"]["methods"])

        pairs = draw_pairs(run, pool, data, vectors, models)
        adapters, unfit = fit_adapters(
            build_adapters(cfg["adapter"]), pairs.vectors, run.seed, timings
        )
        held_out = gate_pairs(pairs.vectors.gate, pairs.vectors.val, adapters)
        artifacts = save_artifacts(run, adapters, held_out)
        gate = estimate_gate(run, adapters, held_out, corpus_size=len(vectors.x_old))

        indexes = index_pair(
            IndexCache(run.paths["index_cache_dir"]), vectors.x_old, vectors.x_new, spec, timings
        )
        with timings("ground_truth"):
            _, knn_truth = exact_search(vectors.x_new, vectors.q_new, run.k)
        results = run_all_strategies(run, indexes, vectors, adapters, unfit, pairs, knn_truth)
        truth = scored_truth(cfg["eval"]["protocols"], knn_truth, data)
        evaluation = evaluate_run(run, results, truth)
        analyses = run_analyses(
            run,
            results,
            truth,
            data=data,
            models=models,
            vectors=vectors,
            indexes=indexes,
            pairs=pairs,
        )
        caught = [f"{w.category.__name__}: {w.message}" for w in warned]

    return run_outcome(
        run,
        data=data,
        models=models,
        drift=drift,
        pairs=pairs,
        adapters=adapters,
        artifacts=artifacts,
        gate=gate,
        indexes=indexes,
        results=results,
        evaluation=evaluation,
        analyses=analyses,
        warnings=caught,
        elapsed=time.time() - started,
    )
