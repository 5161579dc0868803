"""Data sources: BEIR folders, the committed offline sets, mteb and HF errors, subsets, configs."""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drift.cli.config import compose, to_plain
from drift.core.errors import ConfigError, DataError
from drift.core.provenance import REPO_ROOT
from drift.data import OFFLINE_DATASETS, load_data
from drift.data.beir import read_beir, write_beir
from drift.data.subsample import subsample
from drift.data.types import RetrievalData

DATA_DIR = REPO_ROOT / "data"
OFFLINE_SIZES = {"manpages": 1076, "faq": 482, "pydoc": 4260}


def toy(n_docs: int = 6, n_queries: int = 3) -> RetrievalData:
    """Query i judges doc i (score 1) and doc i+1 (score 0)."""
    return RetrievalData(
        name="toy",
        corpus_ids=[f"d{i}" for i in range(n_docs)],
        corpus=[f"document number {i} ü" for i in range(n_docs)],
        query_ids=[f"q{i}" for i in range(n_queries)],
        queries=[f"query {i}" for i in range(n_queries)],
        qrels={f"q{i}": {f"d{i}": 1, f"d{i + 1}": 0} for i in range(n_queries)},
    )


@pytest.mark.parametrize("compress", [False, True])
def test_beir_round_trip(tmp_path: Path, compress: bool) -> None:
    data = toy()
    write_beir(data, tmp_path / "toy", compress=compress)
    back = read_beir(tmp_path / "toy")
    assert (back.corpus_ids, back.corpus) == (data.corpus_ids, data.corpus)
    assert (back.query_ids, back.queries, back.qrels) == (data.query_ids, data.queries, data.qrels)
    # rewriting in the other format leaves one readable copy with the same content
    write_beir(back, tmp_path / "toy", compress=not compress)
    assert read_beir(tmp_path / "toy").corpus == data.corpus


def test_beir_title_joined_and_unjudged_queries_dropped(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": 1, "title": "Title", "text": "body"}\n{"_id": "2", "text": "plain"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "a", "text": "qa"}\n{"_id": "b", "text": "x"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\na\t1\t1\n")
    data = read_beir(tmp_path)
    assert data.corpus == ["Title body", "plain"] and data.corpus_ids == ["1", "2"]
    assert data.query_ids == ["a"]
    with pytest.raises(DataError, match="no qrels for split 'dev'.*found: \\['test'\\]"):
        read_beir(tmp_path, split="dev")


def test_qrels_naming_a_missing_document_is_a_data_error(tmp_path: Path) -> None:
    write_beir(toy(), tmp_path)
    with open(tmp_path / "qrels" / "test.tsv", "a") as f:
        f.write("q0\tghost\t1\n")
    with pytest.raises(DataError, match="not in the corpus.*ghost"):
        read_beir(tmp_path)


@pytest.mark.parametrize("empty", ["corpus", "queries"])
def test_empty_corpus_or_queries_is_a_data_error(tmp_path: Path, empty: str) -> None:
    write_beir(toy(), tmp_path)
    (tmp_path / f"{empty}.jsonl").write_text("\n")
    with pytest.raises(DataError, match=f"holds no {'documents' if empty == 'corpus' else empty}"):
        read_beir(tmp_path)
    with pytest.raises(DataError, match="is empty"):
        RetrievalData(name="e", corpus_ids=[], corpus=[], query_ids=["q"], queries=["q"]).validate()


def test_blank_texts_are_warned_of_once_and_counted_in_the_summary(tmp_path: Path) -> None:
    """Empty and whitespace-only texts are encoded and scored like any other: the run says how
    many (a warning, which the result file keeps) and the result file's dataset block counts
    them."""
    data = toy()
    data.corpus[1], data.corpus[4], data.queries[2] = "", " \n", "\t"
    with pytest.warns(UserWarning, match="empty or whitespace-only texts"):
        write_beir(data, tmp_path, compress=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_beir(tmp_path)
        loaded.validate()  # validated again on its way to the run: no second warning
    (warning,) = caught
    assert "2 of 6 documents (e.g. ['d1', 'd4']) and 1 of 3 queries (e.g. ['q2'])" in str(
        warning.message
    )
    assert loaded.summary()["blank"] == {"corpus": 2, "queries": 1}
    assert toy().summary()["blank"] == {"corpus": 0, "queries": 0}
    ids_only = replace(loaded, corpus_modality="synthetic", query_modality="synthetic")
    assert ids_only.summary()["blank"] == {"corpus": 0, "queries": 0}  # only texts can be blank


@pytest.mark.parametrize("stem", ["corpus", "queries"])
def test_repeated_ids_in_a_beir_file_are_named(tmp_path: Path, stem: str) -> None:
    """A repeated query id used to let the last text win while the labels stayed: refused now,
    naming the id and its lines, for documents and queries alike."""
    write_beir(toy(), tmp_path)
    path = tmp_path / f"{stem}.jsonl"
    first = f"{'d' if stem == 'corpus' else 'q'}0"
    with open(path, "a") as f:
        f.write(f'{{"_id": "{first}", "text": "another text under the same id"}}\n')
    n_lines = len(path.read_text().splitlines())
    repeated = rf"1 `_id`s appear more than once: '{first}' on lines 1, {n_lines}"
    with pytest.raises(DataError, match=repeated):
        read_beir(tmp_path)
    twice = RetrievalData(name="t", corpus_ids=["a", "b", "a"], corpus=["x", "y", "z"],
                          query_ids=["q"], queries=["q"])  # fmt: skip
    with pytest.raises(DataError, match=r"1 corpus ids appear more than once \(e.g. \['a'\]\)"):
        twice.validate()


def test_missing_folder_and_bad_json_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_beir(tmp_path / "nope")
    write_beir(toy(), tmp_path)
    (tmp_path / "queries.jsonl").write_text('{"_id": "q0", "text": "ok"}\n{broken\n')
    with pytest.raises(DataError, match="queries.jsonl:2: not valid JSON"):
        read_beir(tmp_path)


def test_subsample_keeps_judged_docs_and_is_seeded() -> None:
    data = toy(n_docs=40, n_queries=30)
    small = subsample(data, max_corpus=12, max_queries=5, seed=3)
    small.validate()
    assert len(small.queries) == 5 and len(small.corpus) == 12
    judged = {d for rel in small.qrels.values() for d in rel}
    assert judged <= set(small.corpus_ids) and set(small.qrels) == set(small.query_ids)
    assert small.corpus_ids == sorted(small.corpus_ids, key=data.corpus_ids.index)  # order kept
    assert small.meta["subsample"]["n_corpus_full"] == 40
    again = subsample(data, max_corpus=12, max_queries=5, seed=3)
    assert (again.query_ids, again.corpus_ids) == (small.query_ids, small.corpus_ids)
    other = subsample(data, max_corpus=12, max_queries=5, seed=4)
    assert other.query_ids != small.query_ids
    # judged documents beyond max_corpus are all kept
    tight = subsample(data, max_corpus=3, max_queries=5, seed=3)
    assert set(tight.corpus_ids) == {d for rel in tight.qrels.values() for d in rel}
    assert len(tight.corpus) > 3 and tight.validate()
    assert subsample(data) is data
    with pytest.raises(ConfigError, match="max_queries"):
        subsample(data, max_queries=0)


def test_random_corpus_subset_keeps_only_the_labels_of_kept_documents() -> None:
    data = toy(n_docs=40, n_queries=30)
    small = subsample(data, max_corpus=12, max_queries=20, seed=3, corpus_subset="random")
    small.validate()
    assert len(small.corpus) == 12 and len(small.queries) == 20
    assert small.meta["subsample"]["corpus_subset"] == "random"
    judged_first = subsample(data, max_corpus=12, max_queries=20, seed=3)
    assert small.corpus_ids != judged_first.corpus_ids  # not the queries' own documents first
    labelled = {d for rel in small.qrels.values() for d in rel}
    assert labelled <= set(small.corpus_ids) and all(small.qrels.values())
    assert set(small.qrels) < set(small.query_ids)  # some queries lost every relevant document
    with pytest.raises(ConfigError, match="corpus_subset must be one of judged_first, random"):
        subsample(data, max_corpus=12, corpus_subset="shuffled")


def test_nested_corpus_subsets_grow_one_corpus() -> None:
    """With one seed every smaller nested subset lies inside every larger one (the scale sweeps'
    design); labels are cut to the kept documents as for random subsets; seeds differ."""
    data = toy(n_docs=40, n_queries=30)
    sizes = (5, 12, 25, 39)
    subsets = [subsample(data, max_corpus=n, seed=3, corpus_subset="nested") for n in sizes]
    for small, large in itertools.pairwise(subsets):
        assert set(small.corpus_ids) < set(large.corpus_ids)
    for n, subset in zip(sizes, subsets, strict=True):
        subset.validate()
        assert len(subset.corpus) == n and subset.queries == data.queries
        labelled = {d for rel in subset.qrels.values() for d in rel}
        assert labelled <= set(subset.corpus_ids)
    other_seed = subsample(data, max_corpus=12, seed=4, corpus_subset="nested")
    assert other_seed.corpus_ids != subsets[1].corpus_ids


def test_load_beir_with_limits_through_the_registry(tmp_path: Path) -> None:
    write_beir(toy(n_docs=40, n_queries=30), tmp_path / "toy")
    spec = {"type": "beir", "path": "toy", "max_corpus": 15, "max_queries": 4}
    data = load_data(spec, seed=0, data_dir=tmp_path)  # relative path: under data_dir
    assert (len(data.corpus), len(data.queries), data.name) == (15, 4, "toy")


def test_registry_rejects_unknown_types_and_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset type 'nope'.*beir, beir_mix"):
        load_data({"type": "nope"}, seed=0, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'colour'"):
        load_data(
            {"type": "synthetic", "n_corpus": 5, "n_queries": 2, "colour": 1},
            seed=0,
            data_dir=tmp_path,
        )
    with pytest.raises(ConfigError, match="data_seed"):
        load_data(
            {"type": "synthetic", "n_corpus": 5, "n_queries": 2, "seed": 1},
            seed=0,
            data_dir=tmp_path,
        )


@pytest.mark.parametrize("name", sorted(OFFLINE_SIZES))
def test_offline_sets_have_the_committed_sizes(name: str) -> None:
    folder = DATA_DIR / "offline_text" / name
    data = read_beir(folder)
    n = OFFLINE_SIZES[name]
    assert len(data.corpus) == len(data.queries) == len(data.qrels) == n
    assert all(len(rel) == 1 for rel in data.qrels.values())  # one relevant document per query
    assert {d for rel in data.qrels.values() for d in rel} <= set(data.corpus_ids)
    assert max(len(t) for t in data.corpus) <= 2000 and min(len(t) for t in data.queries) > 0
    source = json.loads((folder / "SOURCE.json").read_text())
    assert source["n_docs"] == n and all(len(d["sha256"]) == 64 for d in source["debs"])
    assert data.meta["source_packages"] == source["packages"]


def test_offline_mix_is_the_sum_of_its_parts() -> None:
    full = ["dataset=offline_mix", "dataset.max_corpus=null", "dataset.max_queries=null"]
    mix = load_data(to_plain(compose(full))["dataset"], seed=0, data_dir=DATA_DIR)
    assert len(mix.corpus) == len(mix.queries) == sum(OFFLINE_SIZES.values())
    assert mix.meta["parts"]["faq"]["n_queries"] == OFFLINE_SIZES["faq"]
    faq = read_beir(DATA_DIR / "offline_text" / "faq")
    i = mix.query_ids.index(f"faq/{faq.query_ids[0]}")
    assert mix.queries[i] == faq.queries[0]
    assert mix.qrels[f"faq/{faq.query_ids[0]}"] == {f"faq/{faq.query_ids[0]}": 1}


def test_offline_default_is_a_seeded_subset_with_its_relevant_docs() -> None:
    spec = to_plain(compose())["dataset"]
    a, b = (load_data(spec, seed=0, data_dir=DATA_DIR) for _ in range(2))
    assert (len(a.corpus), len(a.queries)) == (spec["max_corpus"], spec["max_queries"])
    assert a.corpus_ids == b.corpus_ids
    assert {d for rel in a.qrels.values() for d in rel} <= set(a.corpus_ids)


def test_query_log_pool_is_every_offline_default_query_the_run_holds_out() -> None:
    from drift.data.pairs import held_out_queries
    from drift.experiment.stages import load_unlimited

    spec = to_plain(compose())["dataset"]  # offline_mix, limited by the dataset config itself
    data = load_data(spec, seed=3, data_dir=DATA_DIR)
    unlimited = load_unlimited(spec, data, 3, DATA_DIR)
    assert len(unlimited.queries) == sum(OFFLINE_SIZES.values())
    assert set(data.query_ids) <= set(unlimited.query_ids)
    pool = held_out_queries(unlimited, data)
    assert not set(pool) & set(data.queries)
    assert len(pool) == len(unlimited.queries) - len(data.queries)  # its query texts are unique
    no_limits = {**spec, "max_corpus": None, "max_queries": None}
    assert load_unlimited(no_limits, unlimited, 3, DATA_DIR) is unlimited  # nothing to reload


def test_mix_with_limits_keeps_relevant_docs() -> None:
    spec = {
        "type": "beir_mix",
        "parts": {"faq": "offline_text/faq", "man": "offline_text/manpages"},
        "max_queries": 50,
        "max_corpus": 200,
    }
    data = load_data(spec, seed=1, data_dir=DATA_DIR)
    assert len(data.queries) == 50 and len(data.corpus) == 200
    assert {d for rel in data.qrels.values() for d in rel} <= set(data.corpus_ids)


@pytest.mark.parametrize(
    "dataset",
    [
        "manpages",
        "faq",
        "pydoc",
        "synthetic",
        "beir_local",
        "mteb",
        "nfcorpus",
        "scifact",
        "ag_news",
        "dbpedia_14",
        "emotion",
    ],
)
def test_every_dataset_config_composes(dataset: str) -> None:
    overrides = [f"dataset={dataset}"]
    if dataset == "beir_local":
        overrides.append("dataset.path=/somewhere")
    if dataset == "mteb":
        overrides.append("dataset.task=SciFact")
    spec = to_plain(compose(overrides))["dataset"]
    assert spec["type"] in {"beir", "beir_mix", "mteb", "classification", "synthetic"}
    if dataset in OFFLINE_DATASETS and dataset != "beir_local":
        assert load_data(spec, seed=0, data_dir=DATA_DIR).validate()


def test_mteb_unknown_task_lists_similar_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown mteb task 'SciFakt'.*SciFact"):
        load_data({"type": "mteb", "task": "SciFakt"}, seed=0, data_dir=tmp_path)
    with pytest.raises(DataError, match="is a Classification task"):
        load_data({"type": "mteb", "task": "Banking77Classification"}, seed=0, data_dir=tmp_path)
    with pytest.raises(DataError, match="has no split 'train'"):
        load_data({"type": "mteb", "task": "NFCorpus", "split": "train"}, seed=0, data_dir=tmp_path)


def test_mteb_offline_task_names_the_task_and_the_alternatives(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_data({"type": "mteb", "task": "NFCorpus"}, seed=0, data_dir=tmp_path)
    message = str(info.value)
    assert "mteb task 'NFCorpus'" in message and "offline mode is on" in message
    assert "offline_mix" in message and "beir_local" in message


def test_classification_offline_is_a_clear_data_error(tmp_path: Path) -> None:
    spec = to_plain(compose(["dataset=ag_news", f"dataset.cache_dir={tmp_path}"]))["dataset"]
    with pytest.raises(DataError, match="fancyzhx/ag_news.*offline mode is on.*offline_mix"):
        load_data(spec, seed=0, data_dir=tmp_path)


def test_mteb_split_is_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conversion of a loaded task, with mteb's own mock split standing in for the hub."""
    import mteb
    from mteb.mocks.mock_tasks.retrieval import base_retrieval_datasplit

    def fake_load_data(self, *args, **kwargs) -> None:
        self.dataset = {"default": {"test": base_retrieval_datasplit()}}

    monkeypatch.setattr(type(mteb.get_task("SciFact")), "load_data", fake_load_data)
    data = load_data({"type": "mteb", "task": "SciFact"}, seed=0, data_dir=tmp_path)
    assert (
        data.corpus_ids == ["d2", "d1"]
        and data.corpus[0] == "Title of d1 This is a positive sentence"
    )
    assert data.queries == ["This is a test sentence", "This is another test sentence"]
    assert data.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d1": 0, "d2": 1}}
    assert data.revision == mteb.get_task("SciFact").metadata.dataset["revision"]
    assert data.meta["ignore_identical_ids"] is False


def test_mteb_ignore_identical_ids_is_recorded_and_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ArguAna sets mteb's ignore_identical_ids (its queries are corpus arguments too): the flag
    lands in the dataset's meta (so in the result file), and the run's truth names, per query,
    the corpus row sharing its id, which evaluate drops."""
    import datasets
    import mteb

    from drift.experiment.stages import scored_truth

    def fake_load_data(self, *args, **kwargs) -> None:
        rows = [("d1", "a reply"), ("q1", "the argument"), ("d2", "another reply")]
        split = {
            "corpus": datasets.Dataset.from_list([{"id": i, "text": t} for i, t in rows]),
            "queries": datasets.Dataset.from_list(
                [{"id": "q1", "text": "the argument"}, {"id": "q2", "text": "a question"}]
            ),
            "relevant_docs": {"q1": {"d1": 1}, "q2": {"d2": 1}},
            "top_ranked": None,
        }
        self.dataset = {"default": {"test": split}}

    monkeypatch.setattr(type(mteb.get_task("ArguAna")), "load_data", fake_load_data)
    data = load_data({"type": "mteb", "task": "ArguAna"}, seed=0, data_dir=tmp_path)
    assert data.meta["ignore_identical_ids"] is True and data.summary()["ignore_identical_ids"]
    truth = scored_truth(["qrels"], np.zeros((2, 3), dtype=np.int64), data)
    np.testing.assert_array_equal(truth.identical, [data.corpus_ids.index("q1"), -1])


def test_classification_sampling_and_text_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kNN protocol sampling, with small in-memory splits standing in for the hub."""
    import datasets

    from drift.data import classification

    features = datasets.Features(
        {
            "title": datasets.Value("string"),
            "content": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["a", "b"]),
        }
    )
    splits = {
        split: datasets.Dataset.from_dict(
            {
                "title": [f"{split} title {i}" for i in range(n)],
                "content": [f"content {i}" for i in range(n)],
                "label": [i % 2 for i in range(n)],
            },
            features=features,
        )
        for split, n in (("train", 50), ("test", 20))
    }
    monkeypatch.setattr(classification, "_resolve_revision", lambda path: "abc123")
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config, split, **kw: splits[split])
    spec = to_plain(compose(["dataset=dbpedia_14", "dataset.corpus_size=30"]))["dataset"]
    data = load_data(spec, seed=0, data_dir=tmp_path)
    assert (len(data.corpus), len(data.queries), data.qrels) == (30, 20, None)  # 10k capped to 20
    i = int(data.corpus_ids[0].split("/")[1])
    assert data.corpus[0] == f"train title {i} content {i}"
    assert data.meta["label_names"] == ["a", "b"] and data.revision == "abc123"
    assert sum(data.meta["corpus_label_counts"].values()) == 30
    assert load_data(spec, seed=1, data_dir=tmp_path).corpus_ids != data.corpus_ids
