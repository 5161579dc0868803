"""scripts/build_large_text.py: the GCIDE retrieval set, on a tiny synthetic dictd file.

The synthetic dictionary below is made up for these tests (in GCIDE's dictd layout); the real
package is read only by the slow test, when its .deb is in $DRIFT_DEBS.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drift.cli.config import compose, to_plain
from drift.core.errors import DataError
from drift.core.provenance import REPO_ROOT
from drift.data import load_data

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import build_large_text as gcide  # noqa: E402

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# SYNTHETIC test entries in dictd GCIDE layout (not real dictionary text).
HEADER = "00-database-info\n   This file was converted from a synthetic test source.\n"
ARTICLES = [
    # 0: pronunciation, respelling, inflections, etymology; the headword in a quotation; and
    # dictd's run-on of the next article's headword at the very end
    'Abandon \\A*ban"don\\ ([.a]*b[a^]n"d[u^]n), v. t. [imp. & p. p.\n'
    "   {Abandoned}; p. pr. & vb. n. {Abandoning}.] [OF. abandoner.]\n"
    "   1. To give up absolutely; to forsake entirely.\n"
    "      [1913 Webster]\n\n"
    "            He would abandon his friends. --Anon.\n"
    "      [1913 Webster] Abandon\n",
    # 1: a homograph: same headword, another part of speech
    'Abandon \\A*ban"don\\, n. [F. abandon.]\n'
    "   A complete giving up to natural impulses; careless freedom.\n"
    "   [1913 Webster]\n",
    # 2: accents in the headword
    "Caf['e] \\Ca`f['e]\"\\, n. [F.]\n"
    "   A coffee house; a restaurant serving light meals.\n"
    "   [Webster 1913 Suppl.]\n",
    # 3-5: two spellings in one head; an exact and a near-identical duplicate definition
    'Centring \\Cen"tring\\, Centreing \\Cen"tre*ing\\, n.\n'
    "   An old spelling of centering, the frame of an arch.\n"
    "   [1913 Webster]\n",
    'Centrage \\Cen"trage\\, n.\n'
    "   An old spelling of centering, the frame of an arch.\n"
    "   [1913 Webster]\n",
    'Centerage \\Cen"ter*age\\, n.\n'
    "   An old spelling of Centering: the frame of an arch!\n"
    "   [1913 Webster +PJC]\n",
    # 6: from WordNet: left out
    "penalization \\penalization\\ n.\n"
    "   The act of punishing.\n\n"
    "   Syn: punishment, penalty.\n"
    "        [WordNet 1.5]\n",
    # 7: a plain respelling; 8: a field label right after the pronunciation (kept)
    "Crown \\Crown\\ (kroun), v. t.\n"
    "   To cover the head of; as, to crown a king.\n"
    "   [1913 Webster]\n",
    "Sea fox \\Sea fox\\ (Zool.)\n   The thrasher shark.\n   [1913 Webster]\n",
]
HEADWORDS = ["Abandon", "Abandon", "Cafe", "Centring", "Centrage", "Centerage", "penalization"]
HEADWORDS += ["Crown", "Sea fox"]
# with a real definition (>= 5 words): every headword but "Sea fox" and the WordNet one
ELIGIBLE = {"abandon", "café", "centring", "centreing", "centrage", "centerage", "crown"}


def b64(n: int) -> str:
    digits = ""
    while True:
        n, r = divmod(n, 64)
        digits = B64[r] + digits
        if n == 0:
            return digits


def write_dictd(folder: Path, articles: list[str] = ARTICLES) -> tuple[Path, Path]:
    """A dictd pair (.index, .dict.dz) of `articles`; index lines in dictd's sorted order, with
    extra keys (an inflected form, a database-info entry) pointing into existing articles."""
    folder.mkdir(parents=True, exist_ok=True)
    body, lines = HEADER, ["00-database-info\tA\t" + b64(len(HEADER))]
    for word, article in zip(HEADWORDS, articles, strict=True):
        start = len(body.encode())
        body += article + "\n"
        lines.append(f"{word}\t{b64(start)}\t{b64(len(article.encode()))}")
    lines.append(lines[1].replace("Abandon", "abandoned", 1))  # a second key, same article
    index, dict_dz = folder / "gcide.index", folder / "gcide.dict.dz"
    index.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    dict_dz.write_bytes(gzip.compress(body.encode(), mtime=0))
    return index, dict_dz


def test_entries_drop_head_and_tags_and_mask_the_headword(tmp_path: Path) -> None:
    articles, notes = gcide.read_dictd(*write_dictd(tmp_path))
    assert len(articles) == len(ARTICLES) and not notes  # info entry and repeated key skipped
    build = gcide.build_entries(articles)
    assert build.skipped == {"wordnet_source": 1}
    entries = {e.headwords[0]: e for e in build.entries}
    verb = build.entries[0]
    assert verb.headwords == ["Abandon"]
    assert verb.text == (
        "v. t. 1. To give up absolutely; to forsake entirely.\nHe would ~ his friends. --Anon."
    )
    assert entries["Café"].text == "n. A coffee house; a restaurant serving light meals."
    assert entries["Centring"].headwords == ["Centring", "Centreing"]
    assert entries["Crown"].text == "v. t. To cover the head of; as, to ~ a king."
    assert entries["Sea fox"].text == "(Zool.) The thrasher shark."


def test_set_merges_duplicates_and_judges_every_entry_of_a_headword(tmp_path: Path) -> None:
    articles, _ = gcide.read_dictd(*write_dictd(tmp_path))
    build = gcide.build_entries(articles)
    data = gcide.make_set(build, n_queries=len(ELIGIBLE), seed=0)
    assert build.notes["exact_duplicate_docs"] == 1 and build.notes["near_duplicate_docs"] == 1
    assert len(data.corpus) == len(ARTICLES) - 1 - 2  # less the WordNet entry and the duplicates
    assert {q.casefold() for q in data.queries} == ELIGIBLE
    rel = {q.casefold(): data.qrels[i] for i, q in zip(data.query_ids, data.queries, strict=True)}
    assert len(rel["abandon"]) == 2 and set(rel["abandon"].values()) == {1}  # both homographs
    merged = [rel[w] for w in ("centring", "centreing", "centrage", "centerage")]
    assert all(r == merged[0] and len(r) == 1 for r in merged)  # one entry, four headwords
    with pytest.raises(DataError, match="asked for 8 queries, only 7 headwords"):
        gcide.make_set(gcide.build_entries(articles), n_queries=8, seed=0)


def test_written_set_is_deterministic_and_loads_through_the_dataset_config(tmp_path: Path) -> None:
    index, dict_dz = write_dictd(tmp_path / "src")
    deb = tmp_path / "dict-gcide_test_all.deb"
    deb.write_bytes(b"stand-in for the .deb")
    folders = []
    for out in ("a", "b"):
        data, build = gcide.build_from_dictd(index, dict_dz, n_queries=3, seed=1)
        folders.append(gcide.write_set(tmp_path / out, data, build, deb))
    for name in ("corpus.jsonl.gz", "queries.jsonl.gz", "qrels/test.tsv", "SOURCE.json"):
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    source = json.loads((folders[0] / "SOURCE.json").read_text())
    assert source["n_docs"] == len(data.corpus) and source["skipped"] == {"wordnet_source": 1}
    assert source["license"].startswith("GPL-2.0-or-later")
    assert len(source["debs"][0]["sha256"]) == 64

    spec = to_plain(compose(["dataset=gcide", f"dataset.path={folders[0]}"]))["dataset"]
    loaded = load_data(spec, seed=0, data_dir=tmp_path)
    assert (loaded.corpus, loaded.qrels) == (data.corpus, data.qrels)
    assert loaded.meta["source_packages"] == {gcide.PACKAGE: gcide.VERSION}
    spec.update(max_corpus=3, max_queries=1)
    small = load_data(spec, seed=0, data_dir=tmp_path)
    assert len(small.queries) == 1 and set(next(iter(small.qrels.values()))) <= set(
        small.corpus_ids
    )


def test_default_config_points_at_the_built_set() -> None:
    spec = to_plain(compose(["dataset=gcide"]))["dataset"]
    assert Path(spec["path"]) == REPO_ROOT / "data" / "large_text" / "gcide"
    assert spec["type"] == "beir" and spec["name"] == "gcide"


@pytest.mark.parametrize(
    ("line", "message"),
    [("Abandon\tA", "expected `word<TAB>offset<TAB>length`"), ("Abandon\tA\t!", "base-64")],
)
def test_bad_index_is_one_clear_error(tmp_path: Path, line: str, message: str) -> None:
    index, dict_dz = write_dictd(tmp_path)
    index.write_text(line + "\n")
    with pytest.raises(DataError, match=message):
        gcide.read_dictd(index, dict_dz)


def test_index_pointing_past_the_dictionary_is_an_error(tmp_path: Path) -> None:
    index, dict_dz = write_dictd(tmp_path)
    index.write_text(f"Abandon\tA\t{b64(10**6)}\n")
    with pytest.raises(DataError, match="points past the end"):
        gcide.read_dictd(index, dict_dz)


def test_damaged_dictionary_or_deb_is_one_clear_error(tmp_path: Path) -> None:
    index, dict_dz = write_dictd(tmp_path)
    dict_dz.write_bytes(dict_dz.read_bytes()[:20])  # truncated
    with pytest.raises(DataError, match="cannot read the dictd pair"):
        gcide.read_dictd(index, dict_dz)
    with pytest.raises(DataError, match="is not the pinned"):
        gcide.check_deb(dict_dz)


def _real_deb() -> Path | None:
    folder = os.environ.get("DRIFT_DEBS")
    if not folder:
        return None
    found = sorted(Path(folder).glob(f"{gcide.PACKAGE}_{gcide.VERSION}_*.deb"))
    return found[0] if found else None


@pytest.mark.slow
@pytest.mark.skipif(_real_deb() is None, reason="set DRIFT_DEBS to a folder with dict-gcide's .deb")
def test_real_dictionary_slice(tmp_path: Path) -> None:
    deb = gcide.check_deb(_real_deb())  # the pinned bytes
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    folder = tmp_path / gcide.DICT_DIR
    articles, _ = gcide.read_dictd(folder / "gcide.index", folder / "gcide.dict.dz")
    assert len(articles) > 120_000
    build = gcide.build_entries(articles[:3000])  # the start of the letter A
    assert build.skipped["wordnet_source"] > 0 and len(build.entries) > 2500
    assert not any("[1913 Webster]" in e.text or "\\" in e.text for e in build.entries)
    data = gcide.make_set(build, n_queries=100, seed=0)
    text = dict(zip(data.corpus_ids, data.corpus, strict=True))
    for query_id, query in zip(data.query_ids, data.queries, strict=True):
        word = re.compile(rf"(?<!\w){re.escape(query)}(?!\w)", re.IGNORECASE)
        assert data.qrels[query_id]
        assert not any(word.search(text[d]) for d in data.qrels[query_id])  # masked


@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO_ROOT / "data/large_text/gcide/SOURCE.json").is_file(),
    reason="data/large_text/gcide not built (python scripts/build_large_text.py)",
)
def test_built_set_has_100k_documents_and_loads_a_slice() -> None:
    source = json.loads((REPO_ROOT / "data/large_text/gcide/SOURCE.json").read_text())
    assert source["n_docs"] >= 100_000 and source["n_queries"] >= 1000
    spec = to_plain(
        compose(["dataset=gcide", "dataset.max_corpus=2000", "dataset.max_queries=50"])
    )["dataset"]
    data = load_data(spec, seed=0, data_dir=REPO_ROOT / "data")
    assert (len(data.corpus), len(data.queries)) == (2000, 50)
    assert data.meta["subsample"]["n_corpus_full"] == source["n_docs"]
    assert {d for rel in data.qrels.values() for d in rel} <= set(data.corpus_ids)
