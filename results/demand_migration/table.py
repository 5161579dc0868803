"""The tables of README.md from the result files under runs/ (one row per strategy and design).

python results/demand_migration/table.py results/demand_migration/runs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("knn/recall@10", "qrels/ndcg@10")
SHARES = (0.25, 0.5)


def first_at(curve: dict, share: float, metric: str) -> str:
    """Windowed quality at the first checkpoint whose share encoded reaches `share`."""
    for s, q, v in zip(
        curve["share_encoded"], curve["queries"], curve["quality_window"][metric], strict=True
    ):
        if s >= share:
            return f"{v:.3f} ({q:,} q)"
    return "never"


def main(folder: Path) -> None:
    for path in sorted(folder.rglob("*.json")):
        stream = json.loads(path.read_text())["stream"]
        demand = stream["demand"]
        config = demand["config"]
        print(
            f"\n#### {stream['popularity']}, K = K' = {config['depth']}, background "
            f"{config['background']}/query ({path.name}; N = {stream['n_corpus']:,}, "
            f"{stream['n_unique_queries']} distinct of {stream['length']:,} queries)\n"
        )
        print(
            "| strategy | share encoded | R@10 | R@10, last 1,000 | nDCG@10 "
            "| nDCG@10, last 1,000 | "
            + " | ".join(f"R@10, last 1,000, at {s:.0%} encoded" for s in SHARES)
            + " |"
        )
        print("|---" * (6 + len(SHARES)) + "|")
        depth = config["depth"]
        names = [
            f"demand/status_quo@{depth}",
            f"rerank/status_quo@{depth}",
            f"demand/union@{depth}",
            f"rerank/union@{depth}",
            "backfill/status_quo/random/calibrated@0.25",
            "backfill/status_quo/random/calibrated@0.5",
            "status_quo",
            "full_reindex",
        ]
        curves = {**stream["strategies"], **demand["strategies"]}
        for name in names:
            curve = {**curves[name], "queries": stream["checkpoints"]}
            cells = [f"{curve['share_encoded'][-1]:.1%}"]
            for metric in METRICS:
                cells += [
                    f"{curve['quality'][metric][-1]:.3f}",
                    f"{curve['quality_window'][metric][-1]:.3f}",
                ]
            trajectory = name.startswith(("demand/", "rerank/"))
            cells += [first_at(curve, s, METRICS[0]) if trajectory else "" for s in SHARES]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
