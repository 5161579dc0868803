"""FAISS indexes for cosine search: build, search, exact ground truth, and an on-disk cache.

Every vector is float32 and L2-normalised, so inner product is cosine similarity; every index
here uses METRIC_INNER_PRODUCT. The kinds, chosen by `IndexSpec.kind`:

- flat:    exact search (IndexFlatIP); also what `exact_search` uses for ground truth.
- hnsw:    IndexHNSWFlat with the paper's parameters (M=32, efConstruction=200, efSearch=50).
- ivfpq:   IndexIVFPQ, trained on a seeded sample of the indexed vectors.
- factory: any faiss index-factory string (`IndexSpec.factory`, e.g. "IVF1024,Flat",
           "OPQ16,IVF1024,PQ16", "HNSW32,Flat"), trained like ivfpq when it needs training;
           nprobe and efSearch apply where the index has them.
- cagra:   the GPU graph index (GpuIndexCagra, faiss builds with cuVS only), beside CPU HNSW;
           stored on disk as its CPU form (IndexHNSWCagra) and searched on the GPU.

GPU: with device "auto" or "cuda" and a faiss build with GPU support, flat, IVF and factory
indexes are moved to GPU 0 (HNSW has no GPU implementation in faiss and stays on the CPU; a
factory index the GPU cannot hold stays on the CPU with a warning under "auto", and is an error
under "cuda"). Indexes other than cagra are built on the CPU first, so the cache stores CPU indexes
only. `check_device(spec)` refuses, before anything loads, a cuda or cagra request this faiss
build or machine cannot serve. Threads: faiss uses OpenMP and follows OMP_NUM_THREADS; nothing
here overrides it.

    spec = IndexSpec(kind="hnsw")
    index, info = IndexCache("cache/index").get_or_build(old_corpus_vectors, spec)
    scores, ids = search(index, queries, k=10, spec=spec)   # ids padded with -1 past ntotal
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from drift.core.errors import ConfigError, DataError
from drift.core.files import atomic_write, clean_stale
from drift.core.settings import from_mapping
from drift.core.timing import Timings
from drift.core.vectors import check_vectors

IndexKind = Literal["flat", "hnsw", "ivfpq", "factory", "cagra"]
Device = Literal["auto", "cpu", "cuda"]

# faiss k-means warns below this many training points per centroid (Clustering.h).
MIN_POINTS_PER_CENTROID = 39
# ...and samples at most this many per centroid; training on more is wasted time.
MAX_POINTS_PER_CENTROID = 256

# Build-time fields of each kind: they decide the index's contents, hence the cache key.
# efSearch, nprobe and device only affect how it is searched or where it lives.
_BUILD_FIELDS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "hnsw": ("m", "ef_construction"),
    "ivfpq": ("nlist", "pq_m", "pq_nbits", "seed"),
    "factory": ("factory", "seed"),
    "cagra": ("m",),  # the graph degree
}

_GPU_RESOURCES: Any = None  # one StandardGpuResources, created lazily; must outlive GPU indexes


@dataclass(frozen=True)
class IndexSpec:
    """How to build and search one index. Defaults are the paper's HNSW parameters."""

    kind: IndexKind = "hnsw"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 50
    nlist: int = 1024
    pq_m: int = 16
    pq_nbits: int = 8
    nprobe: int = 16
    seed: int = 0
    device: Device = "auto"
    factory: str | None = None  # kind factory: a faiss index-factory string

    def __post_init__(self) -> None:
        if self.kind not in _BUILD_FIELDS:
            raise ConfigError(
                f"index kind {self.kind!r} is unknown; choose one of {sorted(_BUILD_FIELDS)}"
            )
        if (self.kind == "factory") != (self.factory is not None):
            raise ConfigError(
                "index factory: set a faiss index-factory string exactly when kind is 'factory' "
                f"(index=factory index.factory='IVF1024,Flat'); got kind {self.kind!r}, "
                f"factory {self.factory!r}"
            )
        if self.factory is not None and (not isinstance(self.factory, str) or not self.factory):
            raise ConfigError(f"index factory must be a non-empty string, got {self.factory!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"index device {self.device!r} is unknown; use auto, cpu or cuda")
        for name in ("m", "ef_construction", "ef_search", "nlist", "pq_m", "pq_nbits", "nprobe"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"index {name} must be a positive integer, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IndexSpec:
        """Build from a plain mapping (e.g. the Hydra `index` group); unknown keys are an error."""
        return from_mapping(cls, values, "index")

    @property
    def min_vectors(self) -> int:
        """The fewest vectors an index of this spec can be built over: IVF-PQ trains 2**pq_nbits
        centroids per sub-quantizer on them, a factory index its IVF lists and PQ codebooks (as
        its string states them), flat, HNSW and CAGRA need one."""
        if self.kind == "ivfpq":
            return 2**self.pq_nbits
        if self.kind == "factory":
            return _factory_min_vectors(str(self.factory))
        return 1

    def check_dim(self, d: int) -> None:
        """Refuse a dimension this spec cannot index (IVF-PQ: pq_m must divide it; a factory
        string faiss cannot build at this dimension)."""
        if self.kind == "ivfpq" and d % self.pq_m:
            raise ConfigError(f"IVF-PQ: pq_m={self.pq_m} must divide the dimension {d}")
        if self.kind == "factory":
            _factory_index(str(self.factory), d)

    def build_params(self) -> dict[str, Any]:
        """The fields that determine the built index (the cache key), for this kind only."""
        return {"kind": self.kind, **{f: getattr(self, f) for f in _BUILD_FIELDS[self.kind]}}


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees at least one GPU."""
    return gpu_problem() is None


def gpu_problem() -> str | None:
    """Why faiss cannot use a GPU here (None when it can): a build without GPU support, or a GPU
    build that sees no GPU (no CUDA driver or device)."""
    if not hasattr(faiss, "StandardGpuResources"):
        return (
            f"this faiss build ({faiss.__version__}, CPU only) has no GPU support; install the GPU "
            "build (pip install -e '.[gpu]': faiss-gpu-cu12, see environment.yml)"
        )
    if faiss.get_num_gpus() == 0:
        return "faiss has GPU support but sees no GPU (no CUDA driver or device here)"
    return None


def check_device(spec: IndexSpec) -> None:
    """ConfigError when `spec` asks for what this faiss build or machine lacks: device cuda
    without a usable GPU, or a CAGRA index without a faiss build with cuVS and a GPU. Run by the
    config check, before anything loads."""
    if spec.kind == "cagra":
        if spec.device == "cpu":
            raise ConfigError("index kind 'cagra' is a GPU index; use device auto or cuda")
        problem = gpu_problem()
        if problem is None and not hasattr(faiss, "GpuIndexCagra"):
            problem = "this faiss GPU build has no CAGRA (it comes with the cuVS builds of faiss)"
        if problem:
            raise ConfigError(f"index kind 'cagra': {problem}; use index=hnsw on the CPU")
    if spec.device == "cuda":
        problem = gpu_problem()
        if problem:
            raise ConfigError(f"index device is 'cuda' but {problem}; or set index.device=auto")


def build_index(vectors: np.ndarray, spec: IndexSpec) -> faiss.Index:
    """Build an inner-product index over `vectors` (rows are the ids), on GPU when the spec and
    the faiss build allow it (see module docstring)."""
    check_device(spec)  # before any work: a cuda or cagra request this machine cannot serve
    vectors = check_vectors(vectors, name="vectors to index")
    if vectors.shape[0] == 0:
        raise DataError("cannot build an index over zero vectors")
    if spec.kind == "cagra":
        return _build_cagra(vectors, spec)
    return _to_device(_build_cpu(vectors, spec), spec)


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    spec: IndexSpec,
    *,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product: (scores [nq, k] float32, ids [nq, k] int64).

    efSearch (HNSW) and nprobe (IVF, clamped to nlist) are taken from `spec`. When k exceeds the
    number of indexed vectors, the missing places hold id -1 (and a score of about -3.4e38).
    `allowed` (sorted int64 ids) restricts the search to those ids with a faiss ID selector
    (CPU indexes only: filtered search as a vector database does it, inside the graph or lists).
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"search: k must be a positive integer, got {k!r}")
    queries = check_vectors(queries, name="query vectors", dim=index.d)
    if allowed is None:
        _configure_search(index, spec)
        scores, ids = index.search(queries, int(k))
    else:
        if is_gpu_index(index):
            raise ConfigError("filtered search (allowed ids) needs a CPU index")
        allowed = np.ascontiguousarray(allowed, dtype=np.int64)
        selector = faiss.IDSelectorBatch(allowed)
        scores, ids = index.search(queries, int(k), params=_search_params(spec, index, selector))
    return scores, ids.astype(np.int64, copy=False)


def _search_params(spec: IndexSpec, index: faiss.Index, selector) -> faiss.SearchParameters:
    if spec.kind == "hnsw" or (spec.kind == "factory" and _hnsw_of(index) is not None):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=spec.ef_search)
    if spec.kind in ("ivfpq", "factory") and _ivf_of(index) is not None:
        nlist = _ivf_of(index).nlist
        return faiss.SearchParametersIVF(sel=selector, nprobe=min(spec.nprobe, nlist))
    return faiss.SearchParameters(sel=selector)


def exact_search(
    corpus: np.ndarray, queries: np.ndarray, k: int, *, device: Device = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of `queries` over `corpus` (a flat index): the ground truth."""
    spec = IndexSpec(kind="flat", device=device)
    return search(build_index(corpus, spec), queries, k, spec)


def to_cpu(index: faiss.Index) -> faiss.Index:
    """A CPU copy of a GPU index (the index itself when it already lives on the CPU)."""
    return faiss.index_gpu_to_cpu(index) if is_gpu_index(index) else index


class IndexCache:
    """Built indexes on disk, keyed by a hash of the vectors' bytes and the spec's build fields.

    Files: `<root>/<kind>-<key>.faiss` (faiss.write_index) and `<kind>-<key>.json` (spec, sizes,
    build time and the index file's sha256), each written to a temporary file and moved into place
    with os.replace, so a killed build never leaves a half-written index under the final name. An
    index file whose sha256 differs from the one recorded when it was written (a file overwritten
    in place still parses, and answers wrongly), that cannot be read, or whose size disagrees with
    the vectors, is rebuilt with a warning, never trusted.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        clean_stale(self.root)  # what killed builds left

    def key(self, vectors: np.ndarray, spec: IndexSpec) -> str:
        vectors = check_vectors(vectors, name="vectors to index")
        digest = hashlib.sha256()
        digest.update(json.dumps({"shape": vectors.shape, "dtype": str(vectors.dtype)}).encode())
        digest.update(memoryview(vectors).cast("B"))
        digest.update(json.dumps(spec.build_params(), sort_keys=True).encode())
        return digest.hexdigest()[:32]

    def get_or_build(
        self, vectors: np.ndarray, spec: IndexSpec
    ) -> tuple[faiss.Index, dict[str, Any]]:
        """Return (index, info) with info = {cached, build_seconds, load_seconds, key, path}.

        On a hit, build_seconds is the time the original build took (from the sidecar file).
        """
        vectors = check_vectors(vectors, name="vectors to index")
        key = self.key(vectors, spec)
        path = self.root / f"{spec.kind}-{key}.faiss"
        meta_path = path.with_suffix(".json")
        info: dict[str, Any] = {"key": key, "path": str(path)}

        cached = self._load(path, meta_path, vectors.shape)
        if cached is not None:
            index, meta, load_seconds = cached
            info |= {
                "cached": True,
                "build_seconds": meta["build_seconds"],
                "load_seconds": load_seconds,
            }
            return _to_device(index, spec), info

        start = time.perf_counter()
        index = build_index(vectors, spec)
        build_seconds = time.perf_counter() - start
        meta = {
            "spec": spec.build_params(),
            "n": int(vectors.shape[0]),
            "d": int(vectors.shape[1]),
            "build_seconds": build_seconds,
            "faiss_version": faiss.__version__,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        raw = faiss.serialize_index(to_cpu(index)).tobytes()
        meta["sha256"] = hashlib.sha256(raw).hexdigest()
        atomic_write(path, lambda tmp: tmp.write_bytes(raw))
        atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
        info |= {"cached": False, "build_seconds": build_seconds, "load_seconds": 0.0}
        return index, info

    @staticmethod
    def _load(
        path: Path, meta_path: Path, shape: tuple[int, ...]
    ) -> tuple[faiss.Index, dict[str, Any], float] | None:
        if not (path.exists() and meta_path.exists()):
            return None
        start = time.perf_counter()
        try:
            meta = json.loads(meta_path.read_text())
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
                warnings.warn(
                    f"index cache: {path} does not match the sha256 recorded when it was written "
                    "(changed on disk, or written before checksums were recorded); rebuilding",
                    stacklevel=3,
                )
                return None
            index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
        except (OSError, RuntimeError, ValueError) as err:
            warnings.warn(f"index cache: {path} is unreadable ({err}); rebuilding", stacklevel=3)
            return None
        if (index.ntotal, index.d) != tuple(shape) or (meta.get("n"), meta.get("d")) != shape:
            warnings.warn(
                f"index cache: {path} holds {index.ntotal} x {index.d} vectors, expected "
                f"{shape[0]} x {shape[1]}; rebuilding",
                stacklevel=3,
            )
            return None
        return index, meta, time.perf_counter() - start


@dataclass(frozen=True)
class IndexPair:
    """A corpus indexed twice with one spec: by its old-model vectors (what the deployment
    serves) and by its new-model vectors (the full re-index), beside the cache they came from,
    which builds and keeps the partial indexes of backfills too."""

    spec: IndexSpec
    cache: IndexCache
    old: faiss.Index
    new: faiss.Index
    old_info: dict[str, Any]
    new_info: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """The `index` section of a result record."""
        return {"spec": self.spec.__dict__, "old": self.old_info, "new": self.new_info}


def index_pair(
    cache: IndexCache, x_old: np.ndarray, x_new: np.ndarray, spec: IndexSpec, timings: Timings
) -> IndexPair:
    """Both indexes of a corpus, from the cache or built into it (timed as index/old, index/new)."""
    with timings("index/old"):
        old, old_info = cache.get_or_build(x_old, spec)
    with timings("index/new"):
        new, new_info = cache.get_or_build(x_new, spec)
    return IndexPair(spec, cache, old, new, old_info, new_info)


# -- internals --------------------------------------------------------------------------------
def _build_cpu(vectors: np.ndarray, spec: IndexSpec) -> faiss.Index:
    n, d = vectors.shape
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
    elif spec.kind == "factory":
        index = _trained_factory(vectors, spec)
    else:
        index = _trained_ivfpq(vectors, spec)
    index.add(vectors)
    return index


def _factory_index(factory: str, d: int) -> faiss.Index:
    """An untrained inner-product index of `factory` at dimension `d`, or ConfigError with
    faiss's reason."""
    try:
        return faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
        reason = reason.split(": ", 1)[-1] if "index_factory" in reason else reason
        raise ConfigError(
            f"index factory {factory!r} cannot be built at dimension {d}: {reason} (faiss "
            "index-factory syntax, e.g. 'IVF1024,Flat', 'OPQ16,IVF1024,PQ16', 'HNSW32,Flat')"
        ) from err


def _factory_min_vectors(factory: str) -> int:
    """The training points a factory string needs at least: its IVF list count, and 2**nbits
    for a PQ codebook (what faiss's k-means refuses to train on fewer of)."""
    need = 1
    ivf = re.search(r"IVF(\d+)", factory)
    if ivf:
        need = max(need, int(ivf[1]))
    for match in re.finditer(r"PQ\d+(?:x(\d+))?", factory):
        need = max(need, 2 ** int(match[1] or 8))
    return need


def _trained_factory(vectors: np.ndarray, spec: IndexSpec) -> faiss.Index:
    n, d = vectors.shape
    index = _factory_index(str(spec.factory), d)
    if index.is_trained:
        return index
    if n < spec.min_vectors:
        raise DataError(
            f"index factory {spec.factory!r} trains on at least {spec.min_vectors} vectors, got "
            f"{n}; use fewer IVF lists or PQ bits, or a flat or hnsw index"
        )
    ivf = _ivf_of(index)
    if ivf is not None:
        ivf.cp.seed = spec.seed
    lists = ivf.nlist if ivf is not None else 1
    n_train = min(n, MAX_POINTS_PER_CENTROID * max(lists, spec.min_vectors))
    rng = np.random.default_rng(spec.seed)
    index.train(vectors[np.sort(rng.choice(n, size=n_train, replace=False))])
    return index


def _ivf_of(index: faiss.Index) -> Any:
    """The IVF index inside `index` (a factory index may wrap it), or None."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw_of(index: faiss.Index) -> Any:
    """The HNSW index `index` is (or wraps, as IndexPreTransform does), or None."""
    inner = (
        faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    )
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def _gpu_resources() -> Any:
    global _GPU_RESOURCES
    if _GPU_RESOURCES is None:
        _GPU_RESOURCES = faiss.StandardGpuResources()
    return _GPU_RESOURCES


def _build_cagra(vectors: np.ndarray, spec: IndexSpec) -> faiss.Index:
    """A CAGRA graph over `vectors`, built on GPU 0 (graph degree `m`); check_device has
    refused this spec where faiss has no CAGRA."""
    config = faiss.GpuIndexCagraConfig()
    config.graph_degree = spec.m
    config.intermediate_graph_degree = 2 * spec.m
    index = faiss.GpuIndexCagra(
        _gpu_resources(), vectors.shape[1], faiss.METRIC_INNER_PRODUCT, config
    )
    index.train(vectors)  # CAGRA builds its graph over the vectors it is trained on
    return index


def _trained_ivfpq(vectors: np.ndarray, spec: IndexSpec) -> faiss.Index:
    n, d = vectors.shape
    spec.check_dim(d)
    ksub = spec.min_vectors
    if n < ksub:
        raise DataError(
            f"IVF-PQ with pq_nbits={spec.pq_nbits} needs at least {ksub} vectors to train its "
            f"codebooks, got {n}; use a flat or hnsw index, or lower pq_nbits"
        )
    nlist = max(1, min(spec.nlist, n // MIN_POINTS_PER_CENTROID))
    if nlist < spec.nlist:
        warnings.warn(
            f"IVF-PQ: nlist={spec.nlist} needs {spec.nlist * MIN_POINTS_PER_CENTROID} vectors "
            f"to train; {n} given, so nlist is clamped to {nlist}",
            stacklevel=4,
        )
    n_train = min(n, MAX_POINTS_PER_CENTROID * max(nlist, ksub))
    rng = np.random.default_rng(spec.seed)
    sample = vectors[np.sort(rng.choice(n, size=n_train, replace=False))]
    index = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(d), d, nlist, spec.pq_m, spec.pq_nbits, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = spec.seed
    index.pq.cp.seed = spec.seed
    index.train(sample)
    return index


def exact_ivf_index(vectors: np.ndarray) -> faiss.Index:
    """An exact index over `vectors` that an IVF spec searches as it would IVF-PQ: one inverted
    list holding them uncompressed (IndexIVFFlat, nlist=1, its centroid the origin, so nothing is
    trained). A backfill sub-index over too few rows to train IVF-PQ falls back to it."""
    vectors = check_vectors(vectors, name="vectors to index")
    d = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(np.zeros((1, d), dtype=np.float32))  # trained: as many centroids as lists
    index = faiss.IndexIVFFlat(quantizer, d, 1, faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    return index


def is_gpu_index(index: faiss.Index) -> bool:
    return hasattr(faiss, "GpuIndex") and isinstance(index, faiss.GpuIndex)


def _wants_gpu(spec: IndexSpec) -> bool:
    if spec.device == "cpu":
        return False
    check_device(spec)
    if spec.kind == "hnsw":
        if spec.device == "cuda":
            warnings.warn("faiss has no GPU HNSW; the HNSW index stays on the CPU", stacklevel=4)
        return False
    return gpu_available()


def _to_device(index: faiss.Index, spec: IndexSpec) -> faiss.Index:
    if not _wants_gpu(spec):
        return index
    try:
        return faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    except RuntimeError as err:  # e.g. a PQ sub-dimension the GPU kernels do not support
        if spec.device == "cuda":
            raise ConfigError(f"cannot move the {spec.kind} index to the GPU: {err}") from err
        warnings.warn(f"{spec.kind} index stays on the CPU: {err}", stacklevel=3)
        return index


def _configure_search(index: faiss.Index, spec: IndexSpec) -> None:
    if spec.kind in ("flat", "cagra"):  # CAGRA: faiss's default search parameters
        return
    gpu = is_gpu_index(index)
    space = faiss.GpuParameterSpace() if gpu else faiss.ParameterSpace()
    if spec.kind == "factory":  # what applies to the index the string built
        ivf = index if gpu else _ivf_of(index)
        settings = {"efSearch": spec.ef_search} if _hnsw_of(index) is not None else {}
        if ivf is not None and hasattr(ivf, "nlist"):
            settings["nprobe"] = min(spec.nprobe, ivf.nlist)
        for name, value in settings.items():
            space.set_index_parameter(index, name, value)
        return
    try:
        if spec.kind == "hnsw":
            space.set_index_parameter(index, "efSearch", spec.ef_search)
        else:
            nlist = index.nlist if gpu else faiss.extract_index_ivf(index).nlist
            space.set_index_parameter(index, "nprobe", min(spec.nprobe, nlist))
    except RuntimeError as err:
        raise ConfigError(
            f"search: the index ({type(index).__name__}) does not match spec kind {spec.kind!r}"
        ) from err
