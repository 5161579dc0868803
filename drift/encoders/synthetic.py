"""Synthetic "old" and "new" models with a controllable drift between them (clearly not real).

Every item id maps, through a hash of (seed, id), to a latent vector z in R^k drawn from a
Gaussian mixture (so nearest neighbours follow clusters). With A a fixed random projection whose
row i depends on i only, the old model of dimension d_old and a new one of dimension d_new are

    old = normalise(A[:d_old] z)
    new = normalise(rotate(A[:d_new] (scale(warp(z)) + noise)))

- warp: adds `warp * sin(pi * z_j)` to each latent coordinate (nonlinear: an MLP can learn it),
- scale: multiplies latent coordinate j by exp(anisotropy * g_j), g_j ~ N(0, 1) (linear, not
  orthogonal: an affine map recovers it, Procrustes does not),
- noise: adds per-item Gaussian noise of std `noise` to each latent coordinate (nothing recovers
  it),
- rotate: turns every output vector by rotation * 90 degrees inside fixed random 2-planes
  (orthogonal: Procrustes recovers it; cos(old, new) = cos(rotation * pi / 2) when nothing else
  drifts),
- regimes: with R > 1 the rotation is heterogeneous instead: the mixture components fall into R
  regions of the latent space and each region's latent vectors are turned by rotation * 90
  degrees within its own random 2-planes of the latent space. All regions then share one output
  subspace with conflicting maps, so no single linear map recovers the drift, one per region does
  (a rotation in the output space would move each region into its own subspace, where one global
  affine map fits them all),
- the dimension change: the new model keeps the old one's rows of A and adds more (or drops some).

Warp, scale and noise act on the latent, so they change the neighbourhoods alike in 64 or 768
output dimensions; recovering them from the outputs needs d_old, d_new >= k. Each component is off
at 0, and at drift level 0 with d_new == d_old the new vectors equal the old ones exactly. Plant a
single kind of drift with `Drift(warp=1.0)` etc.; `Drift.at_level(level)` sets all of them from
one number. Everything is deterministic per (seed, id), so any subset of items encodes
identically; the generator parameters make up the encoder's revision (its cache key).

    X_old, X_new = paired_vectors(2000, d_old=64, d_new=96, drift=Drift(rotation=1.0))
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from drift.core.errors import ConfigError
from drift.core.vectors import l2_normalize
from drift.encoders.base import ENCODERS, BaseEncoder, Role
from drift.encoders.resolver import weights_record

GENERATOR_VERSION = "synthetic-v2"
_BLOCK = 8192  # items hashed at a time (bounds the memory of one encode call)
_TAG_CENTRES, _TAG_SHARED, _TAG_ROTATION, _TAG_SCALE, _TAG_REGIME = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Drift:
    """How the new model differs from the old one; every component 0 means no drift.

    Attributes:
        rotation: in [0, 1]; the fraction of a quarter turn every vector is rotated by
            (1: each new vector is orthogonal to its old one).
        anisotropy: >= 0; the log-std of the per-dimension latent scales.
        warp: >= 0; the amplitude of `sin(pi * z)` added to each unit-variance latent coordinate.
        noise: >= 0; the std of per-item Gaussian noise added to each unit-variance latent
            coordinate.
        regimes: >= 1; regions of the latent space, each rotated in its own planes of the
            latent space (1: one rotation of the output space for all; more needs rotation > 0
            and at most as many mixture components).
    """

    rotation: float = 0.0
    anisotropy: float = 0.0
    warp: float = 0.0
    noise: float = 0.0
    regimes: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.rotation <= 1.0:
            raise ConfigError(f"drift rotation must lie in [0, 1], got {self.rotation}")
        if not isinstance(self.regimes, int) or isinstance(self.regimes, bool) or self.regimes < 1:
            raise ConfigError(f"drift regimes must be an integer >= 1, got {self.regimes!r}")
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"drift {f.name} must be >= 0, got {getattr(self, f.name)}")
        if self.regimes > 1 and not self.rotation:
            raise ConfigError(
                f"drift regimes={self.regimes} needs rotation > 0: regimes differ only in their "
                "rotation"
            )

    @classmethod
    def at_level(cls, level: float, **overrides: float | None) -> Drift:
        """All components at once, scaled by one level in [0, 1]; overrides that are not None win.

        Measured on 1,500 items (64 -> 64 and 384 -> 768 dims alike): the old and new spaces
        share about 65% of each item's 10 nearest neighbours at level 0.25, 46% at 0.5 (MiniLM-L6
        and mpnet share 41-52% on real text), 36% at 0.75 and 30% at 1, where each new vector is
        also orthogonal to its old one.
        """
        if not 0.0 <= level <= 1.0:
            raise ConfigError(f"drift level must lie in [0, 1], got {level}")
        values = {
            "rotation": level,
            "anisotropy": 0.75 * level,
            "warp": 0.75 * level,
            "noise": 0.5 * level,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def describe(self) -> str:
        # regimes=1 is left out, so the revisions (cache keys) made before it existed still hold
        return ",".join(
            f"{f.name}={getattr(self, f.name):g}"
            for f in fields(self)
            if f.name != "regimes" or self.regimes != 1
        )


@dataclass(frozen=True)
class LatentSpace:
    """The items' latent vectors: a Gaussian mixture, each item's draw fixed by (seed, id).

    Attributes:
        latent_dim: the dimension of z (the intrinsic dimension of every model's output).
        n_clusters: mixture components; centres are N(0, I).
        cluster_std: the within-cluster std, relative to the spread of the centres.
        seed: fixes the centres, the projections and every item's draw.
    """

    latent_dim: int = 64
    n_clusters: int = 32
    cluster_std: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.n_clusters < 1 or self.cluster_std <= 0:
            raise ConfigError(f"bad latent space {self}: sizes must be >= 1, cluster_std > 0")

    def describe(self) -> str:
        return (
            f"{GENERATOR_VERSION}:k={self.latent_dim},c={self.n_clusters},"
            f"std={self.cluster_std:g},seed={self.seed}"
        )

    @cached_property
    def centres(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, _TAG_CENTRES])
        return rng.standard_normal((self.n_clusters, self.latent_dim))

    def cluster(self, ids: Sequence[str]) -> np.ndarray:
        """The mixture component of each item."""
        u = item_uniforms(ids, f"{self.seed}/cluster", 1)[:, 0]
        return np.minimum((u * self.n_clusters).astype(np.int64), self.n_clusters - 1)

    def regions(self, n_regions: int) -> np.ndarray:
        """[n_clusters] region of each mixture component: the components sorted along the
        centres' first principal axis, cut into `n_regions` runs of (nearly) equal length.

        Regions are thus contiguous parts of the latent space along its main direction of spread
        (as classes are regions of an embedding space), not interleaved components.
        """
        centred = self.centres - self.centres.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        order = np.argsort(centred @ (axis * np.sign(axis[np.abs(axis).argmax()])), kind="stable")
        region = np.empty(self.n_clusters, dtype=np.int64)
        region[order] = np.arange(self.n_clusters) * n_regions // self.n_clusters
        return region

    def latent(self, ids: Sequence[str]) -> np.ndarray:
        """[n, latent_dim] float64 latent vectors with unit variance per coordinate."""
        cluster = self.cluster(ids)
        z = self.centres[cluster] + self.cluster_std * item_normals(
            ids, f"{self.seed}/latent", self.latent_dim
        )
        return z / math.sqrt(1.0 + self.cluster_std**2)

    def rows(self, tag: int, dim: int) -> np.ndarray:
        """[dim, latent_dim] Gaussian rows with variance 1/latent_dim; row i depends on i only."""
        return np.stack(
            [
                np.random.default_rng([self.seed, tag, i]).standard_normal(self.latent_dim)
                for i in range(dim)
            ]
        ) / math.sqrt(self.latent_dim)


class SyntheticModel:
    """One synthetic model: the old one with `Drift()`, else a new one; its fixed parts (the
    projection, scales and rotation basis) are built once."""

    def __init__(self, space: LatentSpace, dim: int, drift: Drift = Drift()) -> None:
        if dim < 1:
            raise ConfigError(f"synthetic output dimension must be >= 1, got {dim}")
        self.space, self.dim, self.drift = space, dim, drift
        self.proj = space.rows(_TAG_SHARED, dim)
        self.scales = None
        if drift.anisotropy:
            g = np.random.default_rng([space.seed, _TAG_SCALE]).standard_normal(space.latent_dim)
            self.scales = np.exp(drift.anisotropy * g)
        if drift.regimes > space.n_clusters:
            raise ConfigError(
                f"drift regimes={drift.regimes} exceeds the latent space's {space.n_clusters} "
                "mixture components: a regime is made of whole components"
            )
        self.basis, self.region, self.region_bases = None, None, []
        if drift.regimes > 1:  # one fixed random orthogonal basis of the latent space per region
            self.region = space.regions(drift.regimes)
            self.region_bases = [
                _random_basis([space.seed, _TAG_REGIME, r], space.latent_dim)
                for r in range(drift.regimes)
            ]
        elif drift.rotation:  # a fixed random orthogonal basis of the output space
            self.basis = _random_basis([space.seed, _TAG_ROTATION, dim], dim)

    def encode(self, ids: Sequence[str]) -> np.ndarray:
        """Float32 [len(ids), dim] unit vectors."""
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), _BLOCK):
            block = ids[start : start + _BLOCK]
            out[start : start + len(block)] = self._apply(block)
        return out

    def _apply(self, ids: Sequence[str]) -> np.ndarray:
        z = self.space.latent(ids)
        if self.drift.warp:
            z = warp(z, self.drift.warp)
        if self.scales is not None:
            z = z * self.scales
        if self.drift.noise:
            z = z + self.drift.noise * item_normals(ids, f"{self.space.seed}/noise", z.shape[1])
        angle = self.drift.rotation * math.pi / 2
        if self.region is not None:
            region = self.region[self.space.cluster(ids)]
            for r, basis in enumerate(self.region_bases):
                z[region == r] = rotate(z[region == r], basis, angle)
        y = z @ self.proj.T
        if self.basis is not None:
            y = rotate(y, self.basis, angle)
        return l2_normalize(y)


def _random_basis(seed: list[int], dim: int) -> np.ndarray:
    """A fixed random orthogonal dim x dim matrix (QR of a seeded Gaussian, signs fixed)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def rotate(y: np.ndarray, basis: np.ndarray, angle: float) -> np.ndarray:
    """Turn every vector by `angle` within the planes spanned by pairs of `basis` columns.

    An orthogonal map with cos(y, rotate(y)) = cos(angle) for every y (when the dimension is
    even; an odd dimension leaves the last basis direction in place).
    """
    x = y @ basis
    even, odd = x[:, 0:-1:2].copy(), x[:, 1::2].copy()
    c, s = math.cos(angle), math.sin(angle)
    x[:, 0:-1:2], x[:, 1::2] = c * even - s * odd, s * even + c * odd
    return x @ basis.T


def warp(y: np.ndarray, strength: float) -> np.ndarray:
    """The nonlinear component: fold each coordinate by a sinusoid of amplitude `strength`."""
    return y + strength * np.sin(math.pi * y)


def item_uniforms(ids: Sequence[str], key: str, n: int) -> np.ndarray:
    """[len(ids), n] uniforms in (0, 1), each row a pure function of (key, id).

    SHAKE-256 of the id gives the bits, so the draws are the same on every platform.
    """
    raw = b"".join(hashlib.shake_256(f"{key}\x1f{i}".encode()).digest(8 * n) for i in ids)
    bits = np.frombuffer(raw, dtype="<u8").reshape(len(ids), n)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def item_normals(ids: Sequence[str], key: str, n: int) -> np.ndarray:
    """[len(ids), n] standard normals (Box-Muller over `item_uniforms`)."""
    u = item_uniforms(ids, key, n + (n % 2))
    u1, u2 = u[:, 0::2], u[:, 1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate([r * np.cos(2 * math.pi * u2), r * np.sin(2 * math.pi * u2)], axis=1)[
        :, :n
    ]


def paired_vectors(
    n: int,
    *,
    d_old: int,
    d_new: int,
    drift: Drift,
    space: LatentSpace | None = None,
    prefix: str = "item",
) -> tuple[np.ndarray, np.ndarray]:
    """Old and new vectors of `n` items (ids `<prefix><i>`), for tests with a planted drift."""
    space = space or LatentSpace()
    ids = [f"{prefix}{i}" for i in range(n)]
    return SyntheticModel(space, d_old).encode(ids), SyntheticModel(space, d_new, drift).encode(ids)


@ENCODERS.register("synthetic")
class SyntheticEncoder(BaseEncoder):
    """The Encoder protocol over the synthetic generator: items are item id strings.

    `role="old"` is the reference space (no drift parameters allowed); `role="new"` applies
    `Drift.at_level(level)` with any component overridden by `rotation`, `anisotropy`, `warp`,
    `noise`, with `regimes` rotations (one per region of the latent space). Old and new
    encoders must share `latent_dim`, `n_clusters`, `cluster_std`, `seed`. Queries and
    documents encode alike.
    """

    modality = "synthetic"
    real_weights = False
    preprocessing = "l2norm"
    # The generator returns unit vectors itself, _BLOCK items at a time whatever the batch size
    # asked for (so that no vector depends on it).
    normalize = False
    batch_size = _BLOCK

    def __init__(
        self,
        role: Literal["old", "new"],
        dim: int,
        level: float = 0.0,
        latent_dim: int = 64,
        n_clusters: int = 32,
        cluster_std: float = 0.5,
        seed: int = 0,
        rotation: float | None = None,
        anisotropy: float | None = None,
        warp: float | None = None,
        noise: float | None = None,
        regimes: int = 1,
        *,
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        if role not in ("old", "new"):
            raise ConfigError(f"synthetic encoder role must be 'old' or 'new', got {role!r}")
        self.space = LatentSpace(latent_dim, n_clusters, cluster_std, seed)
        self.drift = Drift.at_level(
            level, rotation=rotation, anisotropy=anisotropy, warp=warp, noise=noise, regimes=regimes
        )
        if role == "old" and self.drift != Drift():
            raise ConfigError(
                "the synthetic old encoder is the reference space: drift parameters "
                f"({self.drift.describe()}) apply to role=new only"
            )
        self.model = SyntheticModel(self.space, int(dim), self.drift)
        self.role, self.dim = role, int(dim)
        self.name = f"synthetic/{role}"
        self.revision = f"{self.space.describe()},d={self.dim}"
        if role == "new":
            self.revision += f",{self.drift.describe()}"
        self.weights = weights_record("synthetic", note="generated vectors, not a model")

    def _encode(
        self, items: list[str], role: Role, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        return self.model.encode(items)
