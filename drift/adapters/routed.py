"""Routed adapters for heterogeneous drift: one base adapter per region of the old space.

The paper's appendix plants a drift that differs between classes and reports one global MLP at
.85 ARR against two class-routed MLPs at .94. A deployed query carries no class label and no
old-model vector, so here the regions are found without labels and a query is routed with the new
model's vector alone:

fit    1. a global base adapter on all training pairs (the fallback and the router's first step);
       2. spherical k-means (faiss, seeded) on the training pairs' OLD vectors -> `n_clusters`
          unit centroids in the old space;
       3. each pair joins the centroid nearest its old vector (inner product); a cluster with at
          least `min_pairs` pairs gets its own base adapter fitted on its pairs only (validation
          pairs are split the same way; a cluster without any fits without validation); a
          smaller cluster uses the global adapter;
apply  y = global(x_new); c = the centroid nearest y; output = adapter_c(x_new).

A query is routed by where the global map puts it, not by its (unknown) old vector; `fit_info`
records how often the two agree on the training and validation pairs (`route_agreement/*`), and
per cluster the validation cosine of the global and of the cluster's own adapter. With
`n_clusters=1` there is no k-means and the output is exactly the global adapter's.

    adapter = build_adapter("routed", base="procrustes", n_clusters=4).fit(x_new, x_old)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from drift.adapters import build_adapter
from drift.adapters.base import MIN_PAIRS, Adapter, register_adapter
from drift.adapters.scaling import mean_cosine
from drift.core.errors import CacheCorruptError, ConfigError
from drift.core.seeding import derive_seed
from drift.core.vectors import l2_normalize

# A cluster adapter is estimated from its cluster's pairs alone. Below ~100 pairs it fits noise:
# low_rank_affine's default rank 64 cannot be fitted at all (it needs more pairs than its rank),
# the MLP's early stopping would watch a held-out 20 pairs, and a 768 -> 384 rotation from a few
# dozen pairs is pinned down only on their span. The global adapter, fitted on every pair, is the
# better map for such a cluster's queries.
DEFAULT_MIN_PAIRS = 100
GLOBAL, CENTROIDS, USES_GLOBAL, DIMS = "global", "centroids", "uses_global", "dims"


@register_adapter("routed")
class RoutedAdapter(Adapter):
    """A global adapter plus one adapter per k-means cluster of the old space; see module doc.

    Args:
        base: the registered adapter kind of every sub-adapter (any but "routed").
        base_hparams: constructor arguments of every sub-adapter (e.g. {"rank": 32}).
        n_clusters: k-means clusters of the training pairs' old vectors (1: the global adapter).
        min_pairs: a cluster with fewer training pairs uses the global adapter (the default's
            reason is at DEFAULT_MIN_PAIRS).
        kmeans_iter: k-means iterations.
        dsm: forwarded into base_hparams (as drift.experiment.pipeline passes dsm to every method);
            None leaves the base's own setting or default. It may not contradict base_hparams.
    """

    def __init__(
        self,
        *,
        base: str = "procrustes",
        base_hparams: Mapping[str, Any] | None = None,
        n_clusters: int = 4,
        min_pairs: int = DEFAULT_MIN_PAIRS,
        kmeans_iter: int = 20,
        dsm: bool | None = None,
    ) -> None:
        super().__init__()
        for key, value, least in [
            ("n_clusters", n_clusters, 1),
            ("min_pairs", min_pairs, MIN_PAIRS),
            ("kmeans_iter", kmeans_iter, 1),
        ]:
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < least:
                raise ConfigError(f"routed: {key} must be an integer >= {least}, got {value!r}")
        if base == self.kind:
            raise ConfigError("routed: base cannot be 'routed'; name the adapter kind to route")
        if base_hparams is not None and not isinstance(base_hparams, Mapping):
            raise ConfigError(f"routed: base_hparams must be a mapping, got {base_hparams!r}")
        hparams = dict(base_hparams or {})
        if dsm is not None:
            if "dsm" in hparams and bool(hparams["dsm"]) != bool(dsm):
                raise ConfigError(
                    f"routed: dsm={dsm} contradicts base_hparams dsm={hparams['dsm']}; set one"
                )
            hparams["dsm"] = bool(dsm)
        self.base, self.dsm = base, None if dsm is None else bool(dsm)
        self.n_clusters, self.min_pairs = int(n_clusters), int(min_pairs)
        self.kmeans_iter = int(kmeans_iter)
        # Built once here so a bad base or base_hparams fails at construction, not at fit;
        # its hparams() (every setting, defaults included) are what each sub-adapter gets.
        try:
            self.base_hparams = build_adapter(base, **hparams).hparams()
        except ConfigError as err:
            raise ConfigError(f"routed: base {base!r}: {err}") from err
        self._global: Adapter | None = None
        self._clusters: dict[int, Adapter] = {}
        self._centroids: np.ndarray | None = None

    def hparams(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "base_hparams": dict(self.base_hparams),
            "n_clusters": self.n_clusters,
            "min_pairs": self.min_pairs,
            "kmeans_iter": self.kmeans_iter,
            "dsm": self.dsm,
        }

    @property
    def uses_validation(self) -> bool:  # type: ignore[override]
        return self._sub_adapter().uses_validation

    def _sub_adapter(self) -> Adapter:
        return build_adapter(self.base, **self.base_hparams)

    # -- fit ----------------------------------------------------------------------------------
    def _fit(self, x_new, x_old, x_new_val, x_old_val, seed) -> None:
        n = x_new.shape[0]
        if self.n_clusters > n:
            raise ConfigError(
                f"routed: {self.n_clusters} clusters but only {n} training pairs; "
                f"use n_clusters <= {n}"
            )
        has_val = x_new_val is not None and x_old_val is not None
        self._global = self._sub_adapter().fit(
            x_new, x_old, x_new_val=x_new_val, x_old_val=x_old_val, seed=seed
        )
        if self.n_clusters == 1:  # no k-means: the single centroid only records the mean
            self._centroids = l2_normalize(x_old.mean(axis=0, keepdims=True))
        else:
            self._centroids = spherical_kmeans(
                x_old, self.n_clusters, n_iter=self.kmeans_iter, seed=seed
            )
        members = nearest_centroid(self._centroids, x_old)
        val_members = nearest_centroid(self._centroids, x_old_val) if has_val else None
        self._clusters = {}
        if self.n_clusters > 1:
            self._fit_clusters(x_new, x_old, members, x_new_val, x_old_val, val_members, seed)
        self.fit_info.update(
            {
                "cluster_sizes": np.bincount(members, minlength=self.n_clusters).tolist(),
                "uses_global": [c for c in range(self.n_clusters) if c not in self._clusters],
                "route_agreement/train": self._route_agreement(x_new, members),
                "cosine/train": mean_cosine(self._transform(x_new), x_old),
                "global": {"fit_seconds": self._global.fit_seconds, **self._global.fit_info},
            }
        )
        if has_val:
            self.fit_info.update(
                {
                    "val_cluster_sizes": np.bincount(
                        val_members, minlength=self.n_clusters
                    ).tolist(),
                    "route_agreement/val": self._route_agreement(x_new_val, val_members),
                    "cosine/val": mean_cosine(self._transform(x_new_val), x_old_val),
                }
            )

    def _fit_clusters(self, x_new, x_old, members, x_new_val, x_old_val, val_members, seed):
        """Fit an adapter on each cluster with at least min_pairs pairs (step 3 of the fit)."""
        for c in range(self.n_clusters):
            rows = np.flatnonzero(members == c)
            if rows.size < self.min_pairs:
                continue
            val = np.flatnonzero(val_members == c) if val_members is not None else np.empty(0, int)
            val_new, val_old = (x_new_val[val], x_old_val[val]) if val.size else (None, None)
            sub = self._sub_adapter().fit(
                x_new[rows],
                x_old[rows],
                x_new_val=val_new,
                x_old_val=val_old,
                seed=derive_seed(seed, f"routed/cluster{c}"),
            )
            self._clusters[c] = sub
            info: dict[str, Any] = {"fit_seconds": sub.fit_seconds, **sub.fit_info}
            if val_new is not None:  # how the global map does on the same pairs
                info["global_cosine/val"] = mean_cosine(self._global.transform(val_new), val_old)
            self.fit_info[f"cluster{c}"] = info

    def _route_agreement(self, x_new: np.ndarray, members: np.ndarray) -> float:
        """Share of pairs routed (by the global map of x_new) to the cluster of their old vector."""
        routes = nearest_centroid(self._centroids, self._global.transform(x_new))
        return float(np.mean(routes == members))

    # -- apply --------------------------------------------------------------------------------
    def _transform(self, x_new: np.ndarray) -> np.ndarray:
        y = self._global.transform(x_new)
        if not self._clusters:
            return y
        routes = nearest_centroid(self._centroids, y)
        for c, sub in self._clusters.items():
            rows = np.flatnonzero(routes == c)
            if rows.size:
                y[rows] = sub.transform(x_new[rows])
        return y

    # -- params -------------------------------------------------------------------------------
    def params(self) -> dict[str, np.ndarray]:
        if self._global is None:
            return {}
        out = {f"{GLOBAL}/{k}": v for k, v in self._global.params().items()}
        for c, sub in self._clusters.items():
            out.update({f"cluster{c}/{k}": v for k, v in sub.params().items()})
        uses_global = [c not in self._clusters for c in range(self.n_clusters)]
        return {
            **out,
            CENTROIDS: self._centroids,
            USES_GLOBAL: np.array(uses_global, dtype=np.int8),
            DIMS: np.array([self.d_in, self.d_out], dtype=np.int64),
        }

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        missing = {CENTROIDS, USES_GLOBAL, DIMS} - set(params)
        if missing:
            raise CacheCorruptError(f"routed: saved weights lack {sorted(missing)}")
        centroids = np.asarray(params[CENTROIDS], dtype=np.float32)
        uses_global = np.asarray(params[USES_GLOBAL])
        d_in, d_out = (int(d) for d in params[DIMS])
        if uses_global.shape != (self.n_clusters,) or centroids.shape != (self.n_clusters, d_out):
            raise CacheCorruptError(
                f"routed: saved centroids {centroids.shape} and cluster flags {uses_global.shape} "
                f"do not match n_clusters={self.n_clusters} and d_out={d_out}"
            )
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key, value in params.items():
            prefix, sep, name = key.partition("/")
            if sep:
                groups.setdefault(prefix, {})[name] = value
        own = {c for c in range(self.n_clusters) if not uses_global[c]}
        expected = {GLOBAL} | {f"cluster{c}" for c in own}
        if set(groups) != expected:
            raise CacheCorruptError(
                f"routed: saved weights hold adapters {sorted(groups)} but their cluster flags "
                f"need {sorted(expected)}"
            )
        subs = {prefix: self._sub_adapter() for prefix in expected}
        for prefix, sub in subs.items():
            sub.set_params(groups[prefix])
            sub.d_in, sub.d_out = d_in, d_out
        self._global = subs[GLOBAL]
        self._clusters = {c: subs[f"cluster{c}"] for c in sorted(own)}
        self._centroids = centroids


def spherical_kmeans(x: np.ndarray, k: int, *, n_iter: int, seed: int) -> np.ndarray:
    """[k, d] unit centroids of the unit rows `x` (faiss k-means on the sphere, seeded).

    Every row takes part (no subsampling); faiss re-seeds empty clusters by splitting large ones.
    """
    import faiss  # here, not at the top: loading and applying a fitted adapter needs no faiss

    kmeans = faiss.Kmeans(
        x.shape[1],
        k,
        niter=n_iter,
        seed=seed % 2**31,  # faiss takes a 32-bit signed seed
        spherical=True,
        min_points_per_centroid=1,  # small clusters are handled by min_pairs, not by a warning
        max_points_per_centroid=max(1, -(-x.shape[0] // k)),
        verbose=False,
    )
    kmeans.train(np.ascontiguousarray(x, dtype=np.float32))
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


def nearest_centroid(centroids: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the centroid with the largest inner product with each row of `x`."""
    return np.argmax(x @ centroids.T, axis=1)
