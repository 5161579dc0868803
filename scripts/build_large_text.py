"""Build data/large_text/gcide, a 100k+ document retrieval set, from the Debian package dict-gcide.

    python scripts/build_large_text.py                     # apt-get download the pinned .deb
    python scripts/build_large_text.py --debs /tmp/debs    # use (or add to) .debs in a folder
    python scripts/build_large_text.py measure             # token lengths, timed encode sample

The GNU Collaborative International Dictionary of English (GCIDE, GPL-2.0-or-later) as a BEIR
folder (corpus.jsonl.gz, queries.jsonl.gz, qrels/test.tsv):

  document  one dictionary entry (an article of the dictd file): its part of speech and its
            senses, notes, synonyms and quotations, with the head (headword, pronunciation,
            inflected forms, etymology) dropped and every whole-word occurrence of the entry's own
            headwords replaced by "~", as printed dictionaries do in their examples.
  query     a headword ("captious"), drawn at random (seeded) among the headwords that have at
            least one entry with a real definition; every kept entry whose head lists that
            headword is relevant (score 1: homographs such as "abandon" v. and n. are equally
            right answers).

Masking the headword makes this a task about meaning: without it, an entry's first word is the
query and a string match solves it. The query is the word a dictionary user types; the
definition side is the 100k+ corpus the scale experiments need.

Left out: entries whose GCIDE source tags name WordNet (GCIDE merged WordNet 1.5 glosses; this
project keeps WordNet aside for independent checks), and the database-info pseudo-entries.
Duplicates: after cleaning and truncation, entries whose text is the same, or the same once
lower-cased with punctuation and spacing removed ("near-identical"), are merged into the first
one, which becomes relevant to every headword of the merged entries; SOURCE.json counts both
kinds. The build is deterministic (pinned package version, sorted input, gzip without
timestamps); SOURCE.json records the .deb's sha256 and what was skipped and why.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import build_offline_text as offline  # noqa: E402

from drift.core.errors import DataError  # noqa: E402
from drift.core.files import atomic_write  # noqa: E402
from drift.data.beir import write_beir  # noqa: E402
from drift.data.types import RetrievalData  # noqa: E402

PACKAGE, VERSION = "dict-gcide", "0.48.5+nmu2"  # Debian bookworm
DEB_SHA256 = "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f"
# fetch_debs looks versions up in the offline builder's pin table: add ours beside its own.
offline.PACKAGES.setdefault(PACKAGE, VERSION)
DICT_DIR = "usr/share/dictd"
SET_NAME = "gcide"
N_QUERIES = 5000
MIN_DEFINITION_WORDS = 5  # a query's headword needs one entry this long ("imp. of Do" is not)
MASK = "~"
GPL_TEXT = Path("/usr/share/common-licenses/GPL-2")

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# GCIDE's source tags, "[1913 Webster]", "[WordNet 1.5 +PJC]", "[Webster 1913 Suppl.]": which
# edition or editor (PJC, RDH, ...) an entry or sense comes from; metadata, not text.
_SOURCE = (
    r"(?:1913\s+Webster|Webster\s+1913\s+Suppl\.|WordNet(?:\s+1\.\d)?(?:\s+sense\s*\d*)?"
    r"|PJC\.?|AS|RDH|RP|Century\s+Dict\.,?\s+1906)"
)
_SOURCE_TAG = re.compile(rf"\[\s*\+?\s*{_SOURCE}(?:\s*\+?\s*{_SOURCE})*\s*\]")
# One headword and its pronunciation, "Abandon \A*ban"don\"; alternatives follow after "," or "or".
_WORD = r"(?:[^\\\n{}\[\]]|\[[^\[\]\s\\]{1,5}\])+?"  # may hold accents, "Caf['e]"
_HEADWORD = re.compile(rf"\s*(?P<word>{_WORD})\s*\\(?P<pron>[^\\]*)\\")  # pron may wrap
# Between alternatives: "," or "or" or nothing, maybe after their own part of speech
# ("Loth \Loth\, a., Lothly \Loth"ly\"; "aerodynamics \...\ Aerodynamics \...\").
_ALTERNATIVE = re.compile(
    rf"\s*,?\s*(?:(?:[a-z]{{1,7}}\.|&)\s*)*(?:,|\bor\b)?\s*(?={_WORD}\s*\\[^\\]*\\)"
)
# A respelling right after a pronunciation, "([.a]*b[a^]n"d[u^]n)", "(kroun)", "(?; 135)"; a
# capitalised one is a field label, "(Bot.)", and stays.
_RESPELLING = re.compile(r"\s*\((?![A-Z])[^()]*\)")
# Part-of-speech abbreviations of the head: "n.", "v. t.", "a. & n.", "imp.", "prop. v. t."
_POS = re.compile(r"[\s,]*(?P<pos>(?:(?:[a-z]{1,7}\.|&)\s*)+)")
# GCIDE's ASCII spellings of accented letters: ['e] é, [a^] ă (breve), [=o] ō, ["u] ü, [ae] æ.
_ACCENT_MARK = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303"}
_ACCENT = re.compile(r"\[(['`^\"~=])([A-Za-z])\]|\[([A-Za-z])\^\]")
_NAMED = {
    "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ", "ng": "ŋ",
    "yogh": "ȝ", "deg": "°", "sect": "§", ",c": "ç", "imac": "ī", "=ae": "ǣ",
}  # fmt: skip
_NAMED_RE = re.compile(r"\[(" + "|".join(re.escape(k) for k in _NAMED) + r")\]")


@dataclass
class Entry:
    """One dictionary entry: its headwords (as printed) and its cleaned definition text."""

    offset: int
    headwords: list[str]
    text: str


@dataclass
class Build:
    entries: list[Entry]
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)


# ---------------------------------------------------------------------------- reading dictd


def b64_number(text: str) -> int:
    """dictd's base-64 numbers (offsets and lengths in the .index file)."""
    value = 0
    for char in text:
        digit = _B64.find(char)
        if digit < 0:
            raise DataError(f"not a dictd base-64 number: {text!r}")
        value = value * 64 + digit
    return value


def read_dictd(index_path: Path, dict_path: Path) -> tuple[list[tuple[int, str]], Counter]:
    """(offset, raw text) of every distinct article, in file order, and the decode notes.

    Many index lines (headwords, inflected forms, phrases) point into the same article; each
    article is read once. `.dict.dz` is dictzip, a gzip file that plain gzip reads.
    """
    try:
        raw = dict_path.read_bytes()
        raw = gzip.decompress(raw) if dict_path.suffix == ".dz" else raw
        index_lines = index_path.read_text(encoding="utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:  # a damaged or truncated file
        raise DataError(
            f"cannot read the dictd pair {index_path.name}, {dict_path.name}: {e}"
        ) from e
    spans: set[tuple[int, int]] = set()
    for lineno, line in enumerate(index_lines, 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(f"{index_path}:{lineno}: expected `word<TAB>offset<TAB>length`")
        if parts[0].startswith("00-"):  # 00-database-info and friends: not entries
            continue
        offset, length = b64_number(parts[1]), b64_number(parts[2])
        if offset + length > len(raw):
            raise DataError(f"{index_path}:{lineno}: points past the end of {dict_path.name}")
        spans.add((offset, length))
    notes: Counter = Counter()
    articles = []
    for offset, length in sorted(spans):
        chunk = raw[offset : offset + length]
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:  # three stray Windows-1252 bytes in 0.48.5
            text = chunk.decode("cp1252", errors="replace")
            notes["decoded_as_cp1252"] += 1
        articles.append((offset, text))
    return articles, notes


# ---------------------------------------------------------------------------- one entry


def parse_entry(offset: int, raw: str, next_headword: str | None) -> Entry | str:
    """The entry of one article, or the reason it is skipped.

    dictd's GCIDE sometimes runs the next article's headword onto the end of this one
    ("imp. of {Do}. Didactic"); `next_headword` is cut off there.
    """
    text = raw.rstrip()
    if next_headword and text.endswith(" " + next_headword):
        text = text[: -len(next_headword)].rstrip()
    tags = _SOURCE_TAG.findall(text)
    if any("WordNet" in t for t in tags):
        return "wordnet_source"
    text = _SOURCE_TAG.sub("", text)
    headwords, pos = [], 0
    while m := _HEADWORD.match(text, pos):
        word = m.group("word")
        if word.startswith("'") and m.group("pron").startswith("['"):
            word = f"[{word[:2]}]{word[2:]}"  # dictd dropped the brackets of ['E]
        headwords.append(plain(re.sub(r"^(?:or|and)\s+", "", word)))
        pos = m.end()
        if respelling := _RESPELLING.match(text, pos):
            pos = respelling.end()
        if not (alternative := _ALTERNATIVE.match(text, pos)):
            break
        pos = alternative.end()
    headwords = [h for h in headwords if h]
    if not headwords:
        return "no_headword"
    part_of_speech = ""
    if m := _POS.match(text, pos):
        part_of_speech, pos = m.group("pos").strip(), m.end()
    pos = _skip_brackets(text, pos)  # inflected forms and etymology
    body = clean(text[pos:])
    if "\\" in body:  # a pronunciation left: dictd ran a next entry into this one, no clean cut
        return "run_on_entry"
    body = mask(body, headwords)
    return Entry(offset, headwords, f"{part_of_speech} {body}".strip())


def _skip_brackets(text: str, pos: int) -> int:
    """Past every balanced [...] group that starts at `pos` (after whitespace)."""
    while True:
        start = pos + len(text[pos:]) - len(text[pos:].lstrip(" \n,"))
        if start >= len(text) or text[start] != "[":
            return pos
        depth = 0
        for i in range(start, len(text)):
            depth += {"[": 1, "]": -1}.get(text[i], 0)
            if depth == 0:
                pos = i + 1
                break
        else:
            return pos  # unbalanced: keep the rest as text


def plain(text: str) -> str:
    """GCIDE markup to plain text: accents to Unicode, {cross-references} unbraced, one space."""
    text = _ACCENT.sub(_accent, text)
    text = _NAMED_RE.sub(lambda m: _NAMED[m.group(1)], text)
    text = text.replace("{", "").replace("}", "")
    return " ".join(text.split())


def _accent(m: re.Match) -> str:
    if m.group(3):  # [a^]: breve
        return unicodedata.normalize("NFC", m.group(3) + "\u0306")
    mark, letter = m.group(1), m.group(2)
    return unicodedata.normalize("NFC", letter + ("\u0304" if mark == "=" else _ACCENT_MARK[mark]))


def clean(body: str) -> str:
    """Paragraphs (blank-line separated in dictd) as lines of plain text."""
    paragraphs = (plain(p) for p in re.split(r"\n\s*\n", body))
    return "\n".join(p for p in paragraphs if p)


def mask(text: str, headwords: Sequence[str]) -> str:
    """Whole-word occurrences of the headwords (any case) replaced by MASK."""
    words = sorted({h for h in headwords if h}, key=len, reverse=True)
    pattern = r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)"
    return re.sub(pattern, MASK, text, flags=re.IGNORECASE)


def headword_key(word: str) -> str:
    return " ".join(word.casefold().split())


# ---------------------------------------------------------------------------- the set


def build_entries(articles: Iterable[tuple[int, str]]) -> Build:
    """Parse every article; `articles` in file order (the run-on headword is the next one's)."""
    articles = list(articles)
    build = Build([])
    for i, (offset, raw) in enumerate(articles):
        following = articles[i + 1][1] if i + 1 < len(articles) else ""
        m = _HEADWORD.match(following)
        entry = parse_entry(offset, raw, m.group("word").strip() if m else None)
        if isinstance(entry, str):
            build.skipped[entry] += 1
        elif not entry.text.replace(MASK, "").strip():
            build.skipped["empty_definition"] += 1
        else:
            build.entries.append(entry)
    return build


def make_set(build: Build, *, n_queries: int, seed: int, name: str = SET_NAME) -> RetrievalData:
    """Truncate, merge duplicates, draw the queries: the `RetrievalData` of the set.

    Duplicate counts go to `build.notes` (exact_duplicate_docs, near_duplicate_docs).
    """
    import numpy as np

    kept: list[tuple[str, str, set[str]]] = []  # (id, text, headword keys)
    by_text: dict[str, int] = {}
    by_norm: dict[str, int] = {}
    display: dict[str, str] = {}
    for entry in build.entries:
        text = offline.truncate(entry.text, offline.MAX_DOC_CHARS)
        keys = {headword_key(h) for h in entry.headwords}
        for h in entry.headwords:
            display.setdefault(headword_key(h), h)
        norm = " ".join(re.sub(r"[^\w~]+", " ", text.casefold()).split())
        if (j := by_text.get(text)) is not None:
            build.notes["exact_duplicate_docs"] += 1
        elif (j := by_norm.get(norm)) is not None:
            build.notes["near_duplicate_docs"] += 1
        if j is not None:
            kept[j][2].update(keys)
            continue
        by_text[text] = by_norm[norm] = len(kept)
        kept.append((f"d{entry.offset}", text, keys))

    relevant: dict[str, list[str]] = {}
    answerable: set[str] = set()
    for doc_id, text, keys in kept:
        for key in keys:
            relevant.setdefault(key, []).append(doc_id)
            if len(text.replace(MASK, " ").split()) >= MIN_DEFINITION_WORDS:
                answerable.add(key)
    eligible = sorted(k for k in answerable if len(k) >= 2 and any(c.isalpha() for c in k))
    if n_queries > len(eligible):
        raise DataError(f"{name}: asked for {n_queries} queries, only {len(eligible)} headwords")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(eligible), size=n_queries, replace=False).tolist())
    query_ids = [f"q{i:05d}" for i in range(n_queries)]
    keys = [eligible[i] for i in chosen]
    build.notes["eligible_headwords"] = len(eligible)
    build.notes["relevant_docs_per_query_max"] = max(len(relevant[k]) for k in keys)
    build.notes["queries_with_several_relevant_docs"] = sum(len(relevant[k]) > 1 for k in keys)
    return RetrievalData(
        name=name,
        corpus_ids=[d for d, _, _ in kept],
        corpus=[t for _, t, _ in kept],
        query_ids=query_ids,
        queries=[display[k] for k in keys],
        qrels={q: {d: 1 for d in relevant[k]} for q, k in zip(query_ids, keys, strict=True)},
    ).validate()


def write_set(
    out: Path, data: RetrievalData, build: Build, deb: Path | None, licences: Sequence[Path] = ()
) -> Path:
    """The BEIR folder, SOURCE.json and `licences` (the package's Debian copyright file, the GPL
    text it points to) in `debian-copyright/` under `out/<name>`."""
    folder = out / data.name
    write_beir(data, folder, compress=True)
    for path in licences:
        (folder / "debian-copyright").mkdir(exist_ok=True)
        shutil.copyfile(path, folder / "debian-copyright" / path.name)
    source = {
        "set": data.name,
        "builder": "scripts/build_large_text.py",
        "license": "GPL-2.0-or-later (GCIDE; debian-copyright/dict-gcide, debian-copyright/GPL-2)",
        "packages": {PACKAGE: VERSION},
        "debs": [] if deb is None else [_deb_record(deb)],
        "task": "query: a headword; relevant: every entry whose head lists it (score 1); "
        f"headwords masked as {MASK!r} in the entries",
        "max_doc_chars": offline.MAX_DOC_CHARS,
        "n_docs": len(data.corpus),
        "n_queries": len(data.queries),
        "n_qrels": sum(len(r) for r in (data.qrels or {}).values()),
        "skipped": dict(sorted(build.skipped.items())),
        "notes": dict(sorted(build.notes.items())),
    }
    (folder / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return folder


def check_deb(deb: Path, expected: str = DEB_SHA256) -> Path:
    """`deb`, once its sha256 is the pinned one (DataError otherwise)."""
    if (digest := offline.sha256(deb)) != expected:
        raise DataError(
            f"{deb}: sha256 {digest} is not the pinned {expected} of {PACKAGE}={VERSION}; "
            "delete it and rerun to download it again"
        )
    return deb


def _deb_record(deb: Path) -> dict[str, str]:
    return {"package": PACKAGE, "version": VERSION, "file": deb.name, "sha256": offline.sha256(deb)}


def build_from_dictd(
    index_path: Path, dict_path: Path, *, n_queries: int, seed: int
) -> tuple[RetrievalData, Build]:
    articles, notes = read_dictd(index_path, dict_path)
    build = build_entries(articles)
    build.notes.update(notes)
    build.notes["articles"] = len(articles)
    return make_set(build, n_queries=n_queries, seed=seed), build


# ---------------------------------------------------------------------------- measurement


def measure(folder: Path, *, sample: int, seed: int) -> dict:
    """Token lengths (all texts, all-MiniLM-L6-v2's tokenizer) and a timed encode of `sample`
    random documents per model of the paper's pair, extrapolated to the first full encode.

    Numbers depend on the machine and its load: they are written to MEASURED.json with both.
    """
    import os
    import platform
    import time

    import numpy as np
    from omegaconf import OmegaConf

    from drift.cli.config import compose
    from drift.data.beir import read_beir
    from drift.encoders import build_encoder

    cfg = compose()  # only the encoders and paths are resolved: the rest is the run's business
    data = read_beir(folder)
    texts = {"corpus": data.corpus, "queries": data.queries}
    rng = np.random.default_rng(seed)
    picked = [data.corpus[i] for i in rng.choice(len(data.corpus), size=sample, replace=False)]
    report: dict = {
        "command": f"python scripts/build_large_text.py measure --sample {sample} --seed {seed}",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_before": os.getloadavg(),
        },
        "tokens": {},
        "encode": {},
    }
    for role in ("old_encoder", "new_encoder"):
        encoder = build_encoder(
            OmegaConf.to_container(cfg[role], resolve=True),
            device="cpu",
            offline=True,
            model_cache_dir=cfg.paths.model_cache_dir,
        )
        if role == "old_encoder":
            for what, items in texts.items():
                counts = np.array(encoder.token_counts(items))
                report["tokens"][what] = {
                    "tokenizer": encoder.name,
                    "n": int(counts.size),
                    "mean": round(float(counts.mean()), 1),
                    **{f"p{q}": int(np.percentile(counts, q)) for q in (5, 25, 50, 75, 95, 99)},
                    "max": int(counts.max()),
                    "share_over_256": round(float((counts > 256).mean()), 4),
                    "share_over_384": round(float((counts > 384).mean()), 4),
                }
        encoder.encode(picked[:8], role="document")  # warm-up, not timed
        start, cpu_start = time.perf_counter(), time.process_time()
        encoder.encode(picked, role="document")
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        n_texts, threads = len(data.corpus) + len(data.queries), _torch_threads()
        report["encode"][encoder.name] = {
            "batch_size": encoder.batch_size,
            "max_seq_length": encoder.max_seq_length,
            "torch_threads": threads,
            "sample_docs": sample,
            "seconds": round(seconds, 2),
            "docs_per_second": round(sample / seconds, 1),
            "first_encode_hours_at_this_load": round(n_texts / sample * seconds / 3600, 2),
            # Less load-bound than wall time: on `threads` free cores the wall time would be about
            # CPU time / threads. An estimate, not a bound: under contention torch's threads also
            # burn CPU spinning while they wait for each other, and threads never scale fully.
            "cpu_seconds": round(cpu_seconds, 2),
            "first_encode_hours_on_free_cores": round(
                n_texts / sample * cpu_seconds / threads / 3600, 2
            ),
        }
    report["machine"]["load_after"] = os.getloadavg()
    return report


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ---------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=["build", "measure"], default="build")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data/large_text")
    parser.add_argument("--debs", type=Path, default=None, help="folder of .debs (or download)")
    parser.add_argument("--n-queries", type=int, default=N_QUERIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=300, help="measure: documents timed")
    args = parser.parse_args(argv)
    if args.action == "measure":
        folder = args.out / SET_NAME
        report = measure(folder, sample=args.sample, seed=args.seed)
        text = json.dumps(report, indent=2) + "\n"
        atomic_write(folder / "MEASURED.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        deb_dir = args.debs or Path(tmp) / "debs"
        deb_dir.mkdir(parents=True, exist_ok=True)
        deb = check_deb(offline.fetch_debs([PACKAGE], deb_dir)[PACKAGE])
        root = offline.extract(deb, Path(tmp) / "x")
        data, build = build_from_dictd(
            root / DICT_DIR / "gcide.index",
            root / DICT_DIR / "gcide.dict.dz",
            n_queries=args.n_queries,
            seed=args.seed,
        )
        copyright_file = root / "usr/share/doc" / PACKAGE / "copyright"
        licences = [copyright_file.rename(copyright_file.with_name(PACKAGE))]
        if GPL_TEXT.is_file():  # the copyright file points to it; Debian's base-files has it
            licences.append(GPL_TEXT)
        folder = write_set(args.out, data, build, deb, licences)
    print(
        f"{folder}: {len(data.corpus)} docs / {len(data.queries)} queries; "
        f"skipped {dict(build.skipped)}; {dict(build.notes)}"
    )


if __name__ == "__main__":
    main()
