"""BEIR-format folders, alone or several merged into one task.

A folder holds `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`) and
`qrels/<split>.tsv` (header `query-id corpus-id score`); each jsonl may be gzipped
(`corpus.jsonl.gz`). A document's text is `title + " " + text` when its title is non-empty, else
`text`, as BEIR's and mteb's text evaluators join them. Only queries the split's qrels judge are
kept (BEIR's queries.jsonl often holds every split's queries).

    dataset=beir_local dataset.path=/data/scifact        # any BEIR folder
    dataset=offline_mix                                  # manpages + faq + pydoc as one task
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from drift.core.errors import DataError
from drift.core.files import atomic_write, clean_stale
from drift.data import DATASETS
from drift.data.subsample import subsample
from drift.data.types import RetrievalData


@DATASETS.register("beir")
def load_beir(
    *,
    path: str | Path,
    split: str = "test",
    name: str | None = None,
    max_corpus: int | None = None,
    max_queries: int | None = None,
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Read one BEIR folder; a relative `path` is resolved against `data_dir`.

    `max_corpus` / `max_queries` take a seeded subset (see drift.data.subsample).
    """
    folder = _resolve(path, data_dir)
    data = read_beir(folder, split=split, name=name)
    return subsample(data, max_corpus=max_corpus, max_queries=max_queries, seed=seed).validate()


@DATASETS.register("beir_mix")
def load_beir_mix(
    *,
    parts: Mapping[str, str | Path],
    split: str = "test",
    name: str = "beir_mix",
    max_corpus: int | None = None,
    max_queries: int | None = None,
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Read several BEIR folders as one task; ids become `<part>/<id>` so they cannot collide.

    Args:
        parts: part name -> folder (relative folders are resolved against `data_dir`).
    """
    if not parts:
        raise DataError(f"dataset {name!r}: `parts` names no BEIR folder")
    mixed = RetrievalData(name=name, corpus_ids=[], corpus=[], query_ids=[], queries=[], qrels={})
    part_meta: dict[str, dict] = {}
    for part, path in parts.items():
        data = read_beir(_resolve(path, data_dir), split=split, name=part)
        mixed.corpus_ids += [f"{part}/{d}" for d in data.corpus_ids]
        mixed.corpus += data.corpus
        mixed.query_ids += [f"{part}/{q}" for q in data.query_ids]
        mixed.queries += data.queries
        for q, rel in data.qrels.items():
            mixed.qrels[f"{part}/{q}"] = {f"{part}/{d}": s for d, s in rel.items()}
        part_meta[part] = {k: data.summary()[k] for k in ("revision", "n_corpus", "n_queries")}
        if "source_packages" in data.meta:
            part_meta[part]["source_packages"] = data.meta["source_packages"]
    mixed.revision = hashlib.sha256(json.dumps(part_meta, sort_keys=True).encode()).hexdigest()[:16]
    mixed.meta = {"split": split, "parts": part_meta}
    mixed.validate()
    return subsample(mixed, max_corpus=max_corpus, max_queries=max_queries, seed=seed).validate()


def read_beir(folder: str | Path, *, split: str = "test", name: str | None = None) -> RetrievalData:
    """Read a BEIR folder into a validated `RetrievalData` (revision: sha256 of its files)."""
    folder = Path(folder)
    name = name or folder.name
    if not folder.is_dir():
        raise DataError(f"dataset {name!r}: BEIR folder {folder} does not exist")
    digest = hashlib.sha256()
    corpus_ids, corpus = [], []
    for row in _unique_ids(_find(folder, "corpus.jsonl", name), digest):
        title, text = str(row.get("title") or ""), str(row.get("text") or "")
        corpus_ids.append(row["_id"])
        corpus.append(f"{title} {text}" if title else text)
    all_queries = {
        row["_id"]: str(row.get("text") or "")
        for row in _unique_ids(_find(folder, "queries.jsonl", name), digest)
    }
    if not corpus_ids or not all_queries:
        raise DataError(
            f"dataset {name!r}: {folder} holds no {'queries' if corpus else 'documents'}"
        )
    qrels = _read_qrels(folder, split, name, digest)
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise DataError(
            f"dataset {name!r}: qrels/{split}.tsv judges {len(missing)} queries that are not in "
            f"queries.jsonl (e.g. {missing[:5]})"
        )
    query_ids = [q for q in all_queries if q in qrels]
    meta: dict = {"split": split}
    source = folder / "SOURCE.json"
    if source.is_file():
        meta["source_packages"] = json.loads(source.read_text()).get("packages", {})
    return RetrievalData(
        name=name,
        corpus_ids=corpus_ids,
        corpus=corpus,
        query_ids=query_ids,
        queries=[all_queries[q] for q in query_ids],
        qrels=qrels,
        revision=digest.hexdigest()[:16],
        meta=meta,
    ).validate()


def write_beir(
    data: RetrievalData, folder: str | Path, *, split: str = "test", compress: bool = False
) -> Path:
    """Write `data` as a BEIR folder that `read_beir` reads back equal (titles are left empty).

    With `compress`, the jsonl files are gzipped with a zero timestamp, so the same data always
    gives the same bytes.
    """
    if data.qrels is None:
        raise DataError(f"dataset {data.name!r}: a BEIR folder needs qrels, and this one has none")
    data.validate()
    folder = Path(folder)
    for part in (folder, folder / "qrels"):  # what killed writes left
        clean_stale(part)
    suffix = ".jsonl.gz" if compress else ".jsonl"
    corpus_rows = (
        {"_id": d, "title": "", "text": t}
        for d, t in zip(data.corpus_ids, data.corpus, strict=True)
    )
    query_rows = ({"_id": q, "text": t} for q, t in zip(data.query_ids, data.queries, strict=True))
    for stem, rows in (("corpus", corpus_rows), ("queries", query_rows)):
        _write_text(folder / f"{stem}{suffix}", _jsonl(rows), compress)
        # read_beir prefers the plain file: drop a stale twin in the other format
        (folder / f"{stem}{'.jsonl' if compress else '.jsonl.gz'}").unlink(missing_ok=True)
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{s}" for q, rel in data.qrels.items() for d, s in rel.items()]
    _write_text(folder / "qrels" / f"{split}.tsv", "\n".join(lines) + "\n", compress=False)
    return folder


def _resolve(path: str | Path, data_dir: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(data_dir) / path


def _find(folder: Path, filename: str, name: str) -> Path:
    for candidate in (folder / filename, folder / f"{filename}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"dataset {name!r}: {folder} has neither {filename} nor {filename}.gz")


def _read_bytes(path: Path, digest: hashlib._Hash) -> str:
    raw = path.read_bytes()
    digest.update(path.name.encode() + b"\0" + raw)
    try:
        return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from e


def _read_jsonl(path: Path, digest: hashlib._Hash) -> Iterator[tuple[int, dict]]:
    """(line number, row) of every non-blank line."""
    for lineno, line in enumerate(_read_bytes(path, digest).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e})") from e
        if not isinstance(row, dict) or "_id" not in row:
            raise DataError(f"{path}:{lineno}: a row needs an `_id` field")
        row["_id"] = str(row["_id"])
        yield lineno, row


def _unique_ids(path: Path, digest: hashlib._Hash) -> list[dict]:
    """The rows of a BEIR jsonl file; DataError naming the ids that appear more than once (a
    repeated query id would otherwise attach its labels to whichever text came last)."""
    rows, first_line, repeats = [], {}, {}
    for lineno, row in _read_jsonl(path, digest):
        if row["_id"] in first_line:
            repeats.setdefault(row["_id"], [first_line[row["_id"]]]).append(lineno)
        first_line.setdefault(row["_id"], lineno)
        rows.append(row)
    if repeats:
        shown = "; ".join(
            f"{i!r} on lines {', '.join(map(str, lines))}" for i, lines in list(repeats.items())[:5]
        )
        raise DataError(f"{path}: {len(repeats)} `_id`s appear more than once: {shown}")
    return rows


def _read_qrels(
    folder: Path, split: str, name: str, digest: hashlib._Hash
) -> dict[str, dict[str, int]]:
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DataError(f"dataset {name!r}: no qrels for split {split!r} ({path}); found: {found}")
    reader = csv.reader(io.StringIO(_read_bytes(path, digest)), delimiter="\t")
    qrels: dict[str, dict[str, int]] = {}
    for lineno, row in enumerate(reader, start=1):
        if not row or (lineno == 1 and row[0] == "query-id"):
            continue
        try:
            q, d, score = row[0], row[1], int(row[2])
        except (IndexError, ValueError) as e:
            raise DataError(
                f"{path}:{lineno}: expected `query-id corpus-id score`, got {row}"
            ) from e
        qrels.setdefault(q, {})[d] = score
    return qrels


def _jsonl(rows: Iterator[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _write_text(path: Path, text: str, compress: bool) -> None:
    data = text.encode("utf-8")
    if compress:
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as f:
            f.write(data)
        data = buffer.getvalue()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
