"""drift.core.records.ResultRecord: the one reader of result files, and its rows.

The records are hand-made (tests/test_recommend.py's `make_record`: round numbers, checkable by
hand) or the committed runs of results/paper_cpu.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_recommend import POINTS, make_record, write_records

from drift.core.errors import DataError
from drift.core.provenance import REPO_ROOT
from drift.core.records import ResultRecord, design_key, design_labels

PAPER_RUNS = REPO_ROOT / "results" / "paper_cpu" / "runs"


def test_from_path_reads_a_result_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(make_record(seed=3, dataset="toy")))
    record = ResultRecord.from_path(path)
    assert record.path == path and record.file == str(path)  # read alone: named by its path
    assert (record.dataset, record.seed, record.debug) == ("toy", 3, False)
    assert (record.old_model, record.new_model) == ("org/old-model", "org/new-model")
    assert record.pair == "old-model -> new-model"  # hub owners left out
    assert record.experiment == "beyond_paper"  # the first tag
    assert (record.n_corpus, record.n_queries) == (1000, 100)
    assert record.design_key == design_key(record.config)
    assert set(record.protocols) == {"knn", "qrels"}
    assert record.stream is None and record.timeline is None


def test_from_path_names_the_file_it_cannot_use(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"not": "a result"}')
    with pytest.raises(DataError, match=r"other\.json is not a result file"):
        ResultRecord.from_path(other)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema_version": 1, "metrics": ')
    with pytest.raises(DataError, match=r"corrupt\.json is not valid JSON"):
        ResultRecord.from_path(corrupt)
    with pytest.raises(DataError, match=r"missing\.json cannot be read"):
        ResultRecord.from_path(tmp_path / "missing.json")


def test_iter_reads_every_result_file_under_the_folders_in_path_order(tmp_path: Path) -> None:
    first = write_records(tmp_path / "a", [make_record(dataset="b"), make_record(dataset="a")])
    second = write_records(tmp_path / "b", [make_record(seed=1, dataset="c")])
    (first / "notes.json").write_text('{"not": "a result"}')  # other JSON files are skipped
    records = ResultRecord.iter([first, second])
    assert [r.file for r in records] == ["a/run-1.json", "b/run-0.json", "c/run-0.json"]
    assert [r.root for r in records] == [first, first, second]
    assert records[0].path == first / "a" / "run-1.json"
    assert [r.dataset for r in ResultRecord.iter(str(first))] == ["a", "b"]  # one folder


def test_iter_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ResultRecord.iter(tmp_path / "missing")
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    with pytest.raises(DataError, match="no result files under"):
        ResultRecord.iter(tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match=r"broken\.json is not valid JSON"):
        ResultRecord.iter(tmp_path)


def test_rows_of_a_hand_made_record() -> None:
    """One row per protocol x strategy x metric (metrics, then ARR), with the run, the strategy's
    cost and the value relative to the full re-index's."""
    data = make_record(seed=2)
    qrels = data["metrics"]["protocols"]["qrels"]["strategies"]
    qrels["full_reindex"]["arr"] = {"arr_ndcg@10": {"mean": 1.0}}
    qrels["status_quo"]["arr"] = {"arr_ndcg@10": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9}}
    qrels["ceiling"] = {"metrics": {"ndcg@10": {"mean": 0.9}}, "timings": {}}  # no cost
    qrels["adapter/procrustes+dsm"] = {
        "metrics": {"ndcg@10": {"mean": None}}, "timings": {"us_per_query": 7.0},
    }  # fmt: skip
    data["adapters"] = {
        "procrustes+dsm": {"fit_seconds": 1.5, "fit_info": {"cosine/val": 0.75}},
    }
    rows = ResultRecord(Path("runs/r.json"), data, Path("runs")).rows()

    per_strategy = 1 + 2  # make_record's metrics: knn R@10; qrels nDCG@10 and R@10
    assert len(rows) == per_strategy * len(POINTS) + 2 + 1 + 1  # + 2 ARR, ceiling, adapter
    by_key = {(r["protocol"], r["strategy"], r["metric"]): r for r in rows}

    status_quo = by_key[("qrels", "status_quo", "ndcg@10")]
    assert status_quo["value"] == 0.4 and math.isclose(status_quo["relative"], 0.8)
    assert status_quo["share_encoded"] == 0.0 and status_quo["new_doc_encodes"] == 0
    assert status_quo["family"] == "paper" and status_quo["method"] is None
    assert status_quo["us_per_query"] == 100.0
    for column, value in {
        "file": "r.json",  # below the folder it was found under
        "dataset": "toy",
        "pair": "old-model -> new-model",
        "experiment": "beyond_paper",
        "seed": 2,
        "debug": False,
        "n_corpus": 1000,
        "np": 20,
        "np_fraction": 0.02,
        "index_kind": "flat",
        "ef_search": None,
        "drift_knn_overlap": 0.5,
        "group": design_key(data["config"]),
    }.items():
        assert status_quo[column] == value, column

    arr = by_key[("qrels", "status_quo", "arr_ndcg@10")]
    assert (arr["value"], arr["relative"], arr["ci_low"], arr["ci_high"]) == (0.8, 0.8, 0.7, 0.9)
    rerank = by_key[("knn", "rerank/status_quo@50", "recall@10")]
    assert rerank["family"] == "rerank" and rerank["cold_encodes_per_query"] == 3.0
    assert math.isclose(rerank["relative"], 0.95) and rerank["share_encoded"] == 0.3
    ceiling = by_key[("qrels", "ceiling", "ndcg@10")]
    assert ceiling["share_encoded"] is None and ceiling["new_doc_encodes"] is None
    assert math.isclose(ceiling["relative"], 1.8)
    adapter = by_key[("qrels", "adapter/procrustes+dsm", "ndcg@10")]
    assert (adapter["method"], adapter["dsm"]) == ("procrustes", True)
    assert (adapter["fit_seconds"], adapter["val_cosine"]) == (1.5, 0.75)
    assert adapter["value"] is None and adapter["relative"] is None


def test_rows_of_a_committed_run_match_its_json() -> None:
    """Every metric of every strategy of a real result file, once, with its mean."""
    record = ResultRecord.iter(PAPER_RUNS)[0]
    rows = record.rows()
    expected = {
        (protocol, strategy, metric): summary["mean"]
        for protocol, block in record.protocols.items()
        for strategy, result in block["strategies"].items()
        for metric, summary in [*result["metrics"].items(), *result["arr"].items()]
    }
    assert {(r["protocol"], r["strategy"], r["metric"]): r["value"] for r in rows} == expected
    assert len(rows) == len(expected)
    assert {r["file"] for r in rows} == {str(record.path.relative_to(PAPER_RUNS))}


def test_design_labels_name_each_design_by_what_sets_it_apart() -> None:
    records = [
        ResultRecord(Path(f"{rank}.json"), make_record(experiment="la_rank")) for rank in (8, 16)
    ]
    for record, rank in zip(records, (8, 16), strict=True):
        record.config["adapter"]["methods"]["low_rank_affine"] = {"rank": rank}
    labels = design_labels(records)
    assert sorted(labels.values()) == ["la_rank rank=16", "la_rank rank=8"]
    assert labels[records[0].design_key] == "la_rank rank=8"
