"""Score upgrade strategies with mteb: its tasks, its evaluator, its result files.

    drift mteb --task SciFact                         # an mteb task (needs the hub once)
    drift mteb --dataset faq --out results/mteb       # a harness dataset (offline), as an mteb task

Each strategy (adapter, status_quo, full_reindex, lazy_rerank) runs as one mteb search model
(drift/integrations/mteb_search.py) through `mteb.evaluate`, which writes
`<out>/results/<model>/<revision>/<experiment>/<Task>.json` (mteb's TaskResult) and prints the
main score. Encodes go through the harness's embedding cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from drift.cli import refused
from drift.core.errors import DriftError
from drift.core.provenance import REPO_ROOT
from drift.integrations.mteb_search import STRATEGIES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="drift mteb", description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--task", action="append", metavar="NAME", help="an mteb retrieval task (repeatable)"
    )
    source.add_argument(
        "--dataset", metavar="NAME", help="a conf/dataset name with labels, e.g. faq (offline)"
    )
    p.add_argument("--old", default="minilm_l6", help="conf/encoder name of the old model")
    p.add_argument("--new", default="mpnet", help="conf/encoder name of the new model")
    p.add_argument(
        "--strategy",
        action="append",
        choices=STRATEGIES,
        metavar="NAME",
        help=f"{', '.join(STRATEGIES)} (repeatable; default: all four)",
    )
    fitted = p.add_mutually_exclusive_group()
    fitted.add_argument(
        "--adapter", default="procrustes", help="adapter kind fitted on corpus pairs"
    )
    fitted.add_argument(
        "--adapter-dir", metavar="DIR", help="a fitted adapter (Adapter.save folder) instead"
    )
    p.add_argument(
        "--pairs", type=int, default=20_000, metavar="N", help="corpus pairs to fit the adapter on"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sample")
    p.add_argument(
        "--index", choices=("flat", "hnsw"), default="flat", help="FAISS index of the corpus"
    )
    p.add_argument(
        "--rerank-depth", type=int, default=100, metavar="N", help="lazy_rerank's candidates"
    )
    p.add_argument("--split", default="test", help="the split to score")
    p.add_argument("--out", default="results/mteb", help="mteb result cache folder")
    p.add_argument(
        "--predictions", metavar="DIR", help="also save mteb's predictions (rankings) here"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda for the encoders")
    p.add_argument(
        "--cache-dir",
        default=str(REPO_ROOT / "cache"),
        metavar="DIR",
        help="embedding and model caches",
    )
    p.add_argument("--progress", action="store_true", help="show mteb's and encoders' bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _log_stages()
    try:
        tasks = _tasks(args)
        models = _models(args)
    except (DriftError, OSError) as err:
        return refused("drift mteb", err)
    import mteb

    cache = mteb.ResultCache(args.out)
    for model in models:
        result = mteb.evaluate(
            model,
            tasks,
            cache=cache,
            overwrite_strategy="always",
            prediction_folder=args.predictions,
            show_progress_bar=args.progress,
        )
        for task_result in result.task_results:
            print(
                f"{task_result.task_name}  {model.strategy:<12}  "
                f"{task_result.get_score():.4f} ({tasks[0].metadata.main_score})  "
                f"{_encodes(model)}"
            )
    print(f"mteb result files under {Path(args.out) / 'results'}")
    return 0


def _log_stages() -> None:
    """The harness's stage lines (drift.timing: encode, fit, index, search, with seconds) on
    stderr; mteb's own logging is left as it is."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s] %(message)s", "%H:%M:%S"))
    drift_logger = logging.getLogger("drift")
    drift_logger.setLevel(logging.INFO)
    drift_logger.addHandler(handler)


def _tasks(args: argparse.Namespace) -> list[Any]:
    if args.dataset:
        from drift.cli.config import compose, to_plain
        from drift.data import load_data
        from drift.integrations.mteb_search import local_task

        cfg = to_plain(compose([f"dataset={args.dataset}"]))
        data = load_data(cfg["dataset"], seed=args.seed, data_dir=cfg["paths"]["data_dir"])
        return [local_task(data, split=args.split)]
    from drift.data.mteb_tasks import get_retrieval_task

    for name in args.task:
        get_retrieval_task(name)  # a clear error for an unknown or non-retrieval task
    import mteb

    from drift.data.hub import hub_error

    tasks = list(mteb.get_tasks(tasks=args.task, eval_splits=[args.split]))
    for task in tasks:  # here, so that a hub that does not answer is one clear error
        try:
            task.load_data()
        except Exception as err:  # the hub and datasets raise many types; all mean "not served"
            raise hub_error(f"mteb task {task.metadata.name!r}", err) from err
    return tasks


def _models(args: argparse.Namespace) -> list[Any]:
    from drift.adapters.base import load_adapter
    from drift.cli.config import encoder_config
    from drift.encoders import build_encoder
    from drift.encoders.cache import CachedEncoder, EmbeddingCache
    from drift.integrations.mteb_search import DriftSearchModel, PairFit
    from drift.retrieval.index import IndexSpec

    cache_dir = Path(args.cache_dir)
    embeddings = EmbeddingCache(cache_dir / "embeddings")
    old, new = (
        CachedEncoder(
            build_encoder(
                encoder_config(name), device=args.device, model_cache_dir=cache_dir / "models"
            ),
            embeddings,
        )
        for name in (args.old, args.new)
    )
    adapter = load_adapter(args.adapter_dir) if args.adapter_dir else None
    fit = None if adapter else PairFit(args.adapter, n_pairs=args.pairs, seed=args.seed)
    return [
        DriftSearchModel(
            old,
            new,
            strategy=strategy,
            adapter=adapter,
            fit=fit,
            index=IndexSpec(kind=args.index),
            rerank_depth=args.rerank_depth,
            show_progress=args.progress,
        )
        for strategy in args.strategy or STRATEGIES
    ]


def _encodes(model: Any) -> str:
    if model.strategy != "lazy_rerank":
        return ""
    return f"new-model document encodes on demand: {model.new_doc_encodes}"


if __name__ == "__main__":
    sys.exit(main())
