"""Build the real offline retrieval sets in data/offline_text/ from pinned Debian packages.

    python scripts/build_offline_text.py                    # apt-get download the pinned .debs
    python scripts/build_offline_text.py --debs /tmp/debs   # use (or add to) .debs in a folder

Every set is a BEIR folder (corpus.jsonl.gz, queries.jsonl.gz, qrels/test.tsv) with one relevant
document per query, human-written text on both sides:

  manpages  query: the NAME line of a man page ("futex - fast user-space locking");
            document: the rest of the page rendered to plain text by groff (manpages,
            manpages-dev). Symlinks and `.so` stubs are skipped, and so is every page whose own
            licence notice is missing or does not clearly allow redistributing modified text.
  faq       query: an FAQ question; document: its answer (perl-doc perlfaq1-9.pod `=head2`
            questions; python3.11-doc html/_sources/faq/*.rst.txt `---`-underlined questions).
  pydoc     query: the first paragraph of a function's docstring; document: the function's
            source without its docstring (the Python 3.11 standard library as Debian ships it in
            libpython3.11-minimal and libpython3.11-stdlib; tests skipped).

Documents are cut to MAX_DOC_CHARS (models read at most 256-512 tokens). A query or document text
that occurs twice in a set is dropped with its partner (it would have two right answers). The
build is deterministic: pinned package versions, sorted inputs, gzip without timestamps; each
set's SOURCE.json records the packages, their versions and the sha256 of each .deb, the tools,
and what was skipped and why. Needs dpkg-deb, apt-get (unless --debs holds every .deb) and groff
(Debian package groff-base) for the man pages.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from drift.data.beir import write_beir  # noqa: E402
from drift.data.types import RetrievalData  # noqa: E402

# Debian bookworm (and bookworm-security) versions; a newer security upload changes the text
# slightly, so the versions are pinned. An old version stays on snapshot.debian.org.
PACKAGES: dict[str, str] = {
    "manpages": "6.03-2",
    "manpages-dev": "6.03-2",
    "perl-doc": "5.36.0-7+deb12u4",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "libpython3.11-minimal": "3.11.2-6+deb12u9",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
}
MAX_DOC_CHARS = 2000
MAX_QUERY_CHARS = 500


@dataclass
class Pair:
    """One query and its one relevant document; `notice` is per-item licence information."""

    id: str
    query: str
    doc: str
    notice: dict = field(default_factory=dict)


@dataclass
class SetBuild:
    pairs: list[Pair]
    skipped: Counter
    extra_source: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- man pages

# Licences whose terms allow redistributing modified (rendered, truncated) text, given the
# copyright notices and licence texts shipped beside the data. Per page, from its SPDX line or
# man-pages' %%%LICENSE_START(...) marker. Left out on purpose: VERBATIM_ONE_PARA (needs the page
# header verbatim), MISC (notice may not be altered), LDPv1 (terms not shipped), and pages that
# state no licence themselves.
MAN_LICENCES_OK = {
    "Linux-man-pages-copyleft",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause-UC",
    "MIT",
    "marker:BSD_ONELINE_CDROM",
    "marker:FREELY_REDISTRIBUTABLE",
    "marker:PERMISSIVE_MISC",
    "marker:PUBLIC_DOMAIN",
    "marker:VERBATIM_PROF",
    "marker:VERBATIM_TWO_PARA",
}
_ROFF_COMMENT = re.compile(r"^[.']\\\"\s?(.*)$")
_ATTRIBUTION = re.compile(r"copyright|\(c\)|©|written by|author", re.IGNORECASE)


def build_manpages(roots: list[Path]) -> SetBuild:
    """NAME line -> rendered page body for every licensed, non-stub page in `roots`."""
    groff = shutil.which("groff")
    if groff is None:
        sys.exit("groff not found: install it (Debian: apt-get install groff-base)")
    skipped: Counter = Counter()
    pairs: list[Pair] = []
    pages = sorted(
        (p for root in roots for p in (root / "usr/share/man").glob("man*/*.gz")),
        key=lambda p: (p.parent.name, p.name),
    )
    for page in pages:
        if page.is_symlink():
            skipped["symlink"] += 1
            continue
        source = gzip.decompress(page.read_bytes()).decode("utf-8")
        requests = [ln for ln in source.splitlines() if ln and not _ROFF_COMMENT.match(ln)]
        if requests and requests[0].startswith(".so "):
            skipped["so_stub"] += 1
            continue
        licence = _man_licence(source)
        if licence not in MAN_LICENCES_OK:
            skipped[f"licence:{licence}"] += 1
            continue
        name, body = _render_man(groff, source)
        if not name or not body:
            skipped["no_name_or_body"] += 1
            continue
        attribution = [
            m.group(1).strip()
            for ln in source.splitlines()
            if (m := _ROFF_COMMENT.match(ln)) and _ATTRIBUTION.search(m.group(1))
        ]
        page_id = page.name.removesuffix(".gz")
        pairs.append(
            Pair(
                page_id,
                name,
                body,
                {
                    "page": f"{page.parent.name}/{page_id}",
                    "license": licence,
                    "copyright": attribution,
                },
            )
        )
    version = subprocess.run([groff, "--version"], capture_output=True, text=True).stdout
    return SetBuild(pairs, skipped, {"tools": {"groff": version.splitlines()[0]}})


def _man_licence(source: str) -> str:
    if m := re.search(r"SPDX-License-Identifier:\s*(\S+)", source):
        return m.group(1)
    if m := re.search(r"%%%LICENSE_START\(([^)]*)\)", source):
        return f"marker:{m.group(1)}"
    return "none-stated"


def _render_man(groff: str, source: str) -> tuple[str, str]:
    """(NAME line, the other sections as plain text) of one roff page."""
    result = subprocess.run(
        [groff, "-t", "-man", "-Tutf8", "-P-cbou", "-rLL=1000n", "-rHY=0"],
        input=source,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        check=True,
    )
    text = result.stdout.replace("\u2010", "-").replace("\u2212", "-")
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    lines = lines[1:-1]  # the running header and footer
    name: list[str] = []
    body: list[str] = []
    section = ""
    for ln in lines:
        if not ln[0].isspace():
            section = ln.strip()
            if section != "NAME":
                body.append(section)
            continue
        collapsed = " ".join(ln.split())
        (name if section == "NAME" else body).append(collapsed)
    return " ".join(name), "\n".join(body)


# ---------------------------------------------------------------------------- FAQs

_POD_CODE = re.compile(r"[A-Z]<([^<>]*)>")
# C<< a->b >>: as many > close as < opened, with whitespace inside
_POD_CODE_MULTI = [re.compile(rf"[A-Z]{'<' * n}\s+(.*?)\s+{'>' * n}", re.DOTALL) for n in (4, 3, 2)]
_POD_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}


def build_faq(perl_root: Path, python_doc_root: Path) -> SetBuild:
    """perlfaq `=head2` questions and Python FAQ `---` headings -> their answers."""
    pairs: list[Pair] = []
    skipped: Counter = Counter()
    pod_dir = next((perl_root / "usr/share/perl").glob("*/pod"))
    for n in range(1, 10):
        for i, (question, answer) in enumerate(_pod_questions(pod_dir / f"perlfaq{n}.pod")):
            if not answer:
                skipped["empty_answer"] += 1
                continue
            notice = {
                "source": f"perlfaq{n}.pod",
                "license": "Perl (GPL-1.0-or-later OR Artistic-1.0-Perl)",
            }
            pairs.append(Pair(f"perlfaq{n}-{i:03d}", question, answer, notice))
    faq_dir = python_doc_root / "usr/share/doc/python3.11/html/_sources/faq"
    for path in sorted(faq_dir.glob("*.rst.txt")):
        stem = path.name.removesuffix(".rst.txt")
        for i, (question, answer) in enumerate(_rst_questions(path)):
            if not answer:
                skipped["empty_answer"] += 1
                continue
            notice = {"source": f"faq/{path.name}", "license": "PSF-2.0"}
            pairs.append(Pair(f"python-{stem}-{i:03d}", question, answer, notice))
    return SetBuild(pairs, skipped)


def _pod_questions(path: Path) -> Iterable[tuple[str, str]]:
    question, answer = None, []
    for line in path.read_text(encoding="utf-8").splitlines() + ["=head1 END"]:
        if line.startswith(("=head1", "=head2", "=cut")):
            if question is not None:
                yield _pod_text(question), _clean_block("\n".join(answer), _pod_text)
            question = line.removeprefix("=head2").strip() if line.startswith("=head2") else None
            answer = []
        elif question is not None:
            if line.startswith("=item"):
                answer.append(line.removeprefix("=item").strip())
            elif not line.startswith("="):  # =over, =back, =begin, =for ...
                answer.append(line)


def _pod_text(text: str) -> str:
    """Plain text of POD formatting codes: C<x> -> x, L<text|target> -> text, E<gt> -> >."""
    for pattern in _POD_CODE_MULTI:
        text = pattern.sub(lambda m: m.group(1), text)
    # escapes first, as placeholders, so that an escaped > cannot close an outer code
    text = re.sub(r"E<(\w+)>", lambda m: f"\0{m.group(1)}\0", text)
    while (new := _POD_CODE.sub(_pod_code, text)) != text:
        text = new
    return re.sub("\0(\\w+)\0", _pod_escape, text)


def _pod_escape(m: re.Match) -> str:
    name = m.group(1)
    return _POD_ESCAPES.get(name, chr(int(name)) if name.isdigit() else name)


def _pod_code(m: re.Match) -> str:
    code, inner = m.group(0)[0], m.group(1)
    if code in "XZ":
        return ""
    if code == "L":
        inner = inner.split("|", 1)[0]
        if "/" in inner and not inner.startswith(("http", "/")):
            page, _, section = inner.partition("/")
            inner = f"{section.strip(chr(34))} in {page}" if page else section.strip('"')
        return inner.strip('"')
    return inner


_RST_UNDERLINE = re.compile(r"^([=\-~^*#+\"'`])\1{2,}\s*$")
_RST_ROLE = re.compile(r":[\w:.-]+:`([^`]*)`")
_RST_LINK = re.compile(r"`([^`<]*?)\s*<[^`>]*>`_{1,2}")
_RST_REF = re.compile(r"`([^`]+)`_{1,2}")
_RST_DROPPED_DIRECTIVES = {"index", "toctree", "contents", "only", "highlight", "testsetup"}


def _rst_questions(path: Path) -> Iterable[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines() + ["", "END", "==="]
    question, start = None, 0
    i = 0
    while i < len(lines) - 1:
        title, under = lines[i].rstrip(), lines[i + 1]
        if title.strip() and _RST_UNDERLINE.match(under) and len(under.strip()) >= len(title):
            if question is not None:
                yield _rst_text(question), _clean_block("\n".join(lines[start:i]), _rst_text)
            question = title.strip() if under[0] == "-" else None
            start = i = i + 2
            continue
        i += 1


def _rst_text(text: str) -> str:
    """Plain text of reStructuredText markup: roles, links, literals, directives."""
    kept: list[str] = []
    drop_indent = None  # inside a directive whose content is not prose (index, toctree, ...)
    for line in text.splitlines():
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if drop_indent is not None and (not stripped or indent > drop_indent):
            continue
        drop_indent = None
        if m := re.match(r"\.\. ([\w-]+)::", stripped):
            if m.group(1) in _RST_DROPPED_DIRECTIVES:
                drop_indent = indent
            continue
        if stripped.startswith(".. ") or re.match(r"^:\w[\w-]*:(\s|$)", stripped):
            continue  # comments, targets, directive options
        kept.append(line)
    text = "\n".join(kept)

    def role(m: re.Match) -> str:
        inner = m.group(1)
        if "<" in inner and inner.endswith(">"):
            inner = inner[: inner.index("<")].strip()
        return inner.lstrip("~!")

    text = _RST_ROLE.sub(role, text)
    text = _RST_LINK.sub(lambda m: m.group(1), text)
    text = _RST_REF.sub(lambda m: m.group(1), text)
    return text.replace("``", "").replace("::\n", ":\n")


def _clean_block(text: str, markup: Callable[[str], str]) -> str:
    """Markup stripped, trailing spaces dropped, runs of blank lines cut to one."""
    text = markup(text)
    lines = [ln.rstrip() for ln in textwrap.dedent(text).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---------------------------------------------------------------------------- Python stdlib


def build_pydoc(roots: list[Path]) -> SetBuild:
    """First docstring paragraph -> the function's code without its docstring."""
    skipped: Counter = Counter()
    pairs: list[Pair] = []
    files: dict[str, Path] = {}
    for root in roots:
        base = root / "usr/lib/python3.11"
        for path in base.rglob("*.py"):
            if path.is_symlink():  # e.g. _sysconfigdata, a link to a platform file
                skipped["symlink"] += 1
            else:
                files[path.relative_to(base).as_posix()] = path
    for rel in sorted(files):
        parts = rel.split("/")
        if any(p in {"test", "tests", "idle_test"} or p.startswith("test_") for p in parts):
            skipped["test_file"] += 1
            continue
        source = files[rel].read_text(encoding="utf-8")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            skipped["syntax_error"] += 1
            continue
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        lines = source.splitlines()
        for qualname, node in _functions(tree.body, ""):
            pair = _function_pair(f"{module}.{qualname}", node, lines)
            if isinstance(pair, str):
                skipped[pair] += 1
            else:
                pairs.append(pair)
    return SetBuild(
        pairs,
        skipped,
        {
            "python": "3.11.2 (Debian " + PACKAGES["libpython3.11-stdlib"] + ")",
            "parsed_with_python": sys.version.split()[0],
        },
    )


def _functions(body: list[ast.stmt], prefix: str) -> Iterable[tuple[str, ast.AST]]:
    """Module-level functions and methods of (nested) classes, with qualified names."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.")


def _function_pair(item_id: str, node: ast.FunctionDef, lines: list[str]) -> Pair | str:
    """The pair of one function, or the reason it is skipped."""
    docstring = ast.get_docstring(node, clean=True)
    if not docstring:
        return "no_docstring"
    query = " ".join(docstring.split("\n\n", 1)[0].split())
    if len(query.split()) < 3:
        return "docstring_too_short"
    if len(node.body) < 2:
        return "body_is_only_docstring"
    doc_node = node.body[0]
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    code = [
        lines[i]
        for i in range(start, node.end_lineno)
        if not doc_node.lineno - 1 <= i < doc_node.end_lineno
    ]
    return Pair(item_id, query, textwrap.dedent("\n".join(code)).strip())


# ---------------------------------------------------------------------------- assembly


def finish(name: str, build: SetBuild) -> RetrievalData:
    """Drop ambiguous pairs, truncate, and make the set's `RetrievalData` (ids unique)."""
    query_count = Counter(p.query for p in build.pairs)
    doc_count = Counter(p.doc for p in build.pairs)
    seen: Counter = Counter()
    pairs = []
    for p in build.pairs:
        if query_count[p.query] > 1 or doc_count[p.doc] > 1:
            build.skipped["duplicate_query_or_doc"] += 1
            continue
        seen[p.id] += 1
        if seen[p.id] > 1:
            p.id = f"{p.id}#{seen[p.id]}"
        p.query, p.doc = truncate(p.query, MAX_QUERY_CHARS), truncate(p.doc, MAX_DOC_CHARS)
        pairs.append(p)
    build.pairs = pairs
    ids = [p.id for p in pairs]
    return RetrievalData(
        name=name,
        corpus_ids=ids,
        corpus=[p.doc for p in pairs],
        query_ids=list(ids),
        queries=[p.query for p in pairs],
        qrels={i: {i: 1} for i in ids},
    ).validate()


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at the last whitespace when one is near the end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:space] if space > limit - 200 else cut).rstrip()


def fetch_debs(names: Iterable[str], deb_dir: Path) -> dict[str, Path]:
    """Path of each pinned .deb in `deb_dir`, downloading the missing ones with apt-get."""
    found = {}
    for pkg in names:
        version = PACKAGES[pkg]
        pattern = f"{pkg}_{version.replace(':', '%3a')}_*.deb"
        matches = sorted(deb_dir.glob(pattern))
        if not matches:
            cmd = ["apt-get", "download", f"{pkg}={version}"]
            if subprocess.run(cmd, cwd=deb_dir).returncode != 0:
                sys.exit(
                    f"could not download {pkg}={version}; run `apt-get update` first, or fetch it "
                    f"from https://snapshot.debian.org/package/ into {deb_dir}"
                )
            matches = sorted(deb_dir.glob(pattern))
        found[pkg] = matches[0]
    return found


def extract(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_set(
    out: Path, name: str, build: SetBuild, debs: dict[str, Path], roots: dict[str, Path]
) -> RetrievalData:
    """Write one set: the BEIR folder, SOURCE.json, NOTICES.jsonl and the Debian copyright files."""
    data = finish(name, build)
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    write_beir(data, folder, compress=True)
    if any(p.notice for p in build.pairs):
        notices = "".join(
            json.dumps({"id": p.id, **p.notice}, ensure_ascii=False) + "\n" for p in build.pairs
        )
        (folder / "NOTICES.jsonl").write_text(notices, encoding="utf-8")
    copyright_dir = folder / "debian-copyright"
    copyright_dir.mkdir()
    copied: set[str] = set()
    for pkg, root in roots.items():
        src = root / "usr/share/doc" / pkg / "copyright"
        # manpages-dev and libpython3.11-stdlib link their doc folder to their sibling's
        if src.is_file() and (digest := sha256(src)) not in copied:
            shutil.copyfile(src, copyright_dir / pkg)
            copied.add(digest)
    source = {
        "set": name,
        "builder": "scripts/build_offline_text.py",
        "packages": {pkg: PACKAGES[pkg] for pkg in debs},
        "debs": [
            {"package": pkg, "version": PACKAGES[pkg], "file": deb.name, "sha256": sha256(deb)}
            for pkg, deb in debs.items()
        ],
        "max_doc_chars": MAX_DOC_CHARS,
        "max_query_chars": MAX_QUERY_CHARS,
        "n_docs": len(data.corpus),
        "n_queries": len(data.queries),
        "skipped": dict(sorted(build.skipped.items())),
        **build.extra_source,
    }
    (folder / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return data


SETS: dict[str, tuple[str, ...]] = {
    "manpages": ("manpages", "manpages-dev"),
    "faq": ("perl-doc", "python3.11-doc"),
    "pydoc": ("libpython3.11-minimal", "libpython3.11-stdlib"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data/offline_text")
    parser.add_argument(
        "--debs",
        type=Path,
        default=None,
        help="folder of .debs (missing ones are downloaded there)",
    )
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        deb_dir = args.debs or Path(tmp) / "debs"
        deb_dir.mkdir(parents=True, exist_ok=True)
        for name in args.sets:
            debs = fetch_debs(SETS[name], deb_dir)
            roots = {pkg: extract(deb, Path(tmp) / "x" / pkg) for pkg, deb in debs.items()}
            if name == "manpages":
                build = build_manpages(list(roots.values()))
            elif name == "faq":
                build = build_faq(roots["perl-doc"], roots["python3.11-doc"])
            else:
                build = build_pydoc(list(roots.values()))
            data = write_set(args.out, name, build, debs, roots)
            print(
                f"{name}: {len(data.corpus)} docs / {len(data.queries)} queries; "
                f"skipped {dict(build.skipped)}"
            )


if __name__ == "__main__":
    main()
