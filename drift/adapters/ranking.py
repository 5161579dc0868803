"""Ranking adapters: maps trained for retrieval, not regression (beyond the paper, issue 21).

Every regression adapter (OP, LA, ridge, the MLP) is fit to make f(x_new) land on x_old for each
pair item. The task is different: a new-model query should retrieve, from the old index, the
documents the new model would retrieve. These adapters train for that task on the same pairs.

Each training pair item acts as a pseudo-query. Its positives are its `n_positives` nearest
neighbours by the new model among the other training items (exact inner product, itself left
out). The mapped query f(x_new_i), unit-normalised, scores every other training item's *old*
vector (or, past `max_candidates` items, its positives and a random draw of the others, redrawn
each step) by cosine / `temperature`, and the loss is listwise: the mean over the positives of
-log softmax(scores)[positive] (a multi-positive InfoNCE over all training items, so the
hardest old-space negatives weigh most). With `distill` = w > 0 the loss adds w times the
KL divergence from the new model's own softmax over the same candidates (its cosines / the same
temperature) to the mapped query's, so the order below the positives counts too.

Three forms, each warm-started at orthogonal Procrustes (OP, uncentred) of the training pairs,
so epoch 0 is OP itself:

- `ranking_linear`:   x -> x (W_OP + D) + b (one affine map; folds into faiss's pre-transform);
- `ranking_low_rank`: x -> x W_OP + x A B + b, W_OP fixed, A (d_new x r) B (r x d_old) trained
                      (as op_low_rank, but fit to rank); affine too;
- `ranking_mlp`:      x -> x (W_OP + D) + GELU(x W1 + b1) W2 + b, W2 starting at zero (as the
                      residual MLP, drift/adapters/residual_mlp.py, whose `gelu` it uses).

Training (torch, CPU by default): AdamW over shuffled minibatches of pseudo-queries, one learning
rate per weight scaled as the residual MLP's (`lr` is relative: a step moves a layer's output by
about `lr` times its size), decoupled weight decay of D toward zero (so W_lin toward OP) and of
A, B, W1, W2. Early stopping and the choice of temperature (a list is a grid) use the validation
pairs' own neighbour lists only: each validation item is a held-out pseudo-query whose truth is
its new-model top VAL_K among all pair items (training and validation, itself left out), and the
score is the recall@VAL_K of its mapped query among those items' old vectors (past VAL_QUERIES
validation items, a seeded draw of that many serves as the pseudo-queries). Epoch 0 (OP) is
scored too, so a fit keeps OP when no epoch beats it (`fit_info["best_epoch"] == 0`). Without
validation pairs, 20% of the training pairs are held out with the seed. The evaluated queries'
answers never reach these pairs when the run excludes them (adapter.exclude_judged, the default).

The fitted weights are numpy arrays and `transform` runs in numpy, so loading and applying a
fitted ranking adapter needs no torch; its serving operations are those of OP + low-rank and of
the residual MLP (drift/serving/runtime.py's vocabulary).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drift.adapters.base import Display, register_adapter
from drift.adapters.baselines import Ridge
from drift.adapters.op_low_rank import ProcrustesLowRank
from drift.adapters.penalty import given_or_held_out
from drift.adapters.procrustes import orthogonal_procrustes
from drift.adapters.residual_mlp import ResidualMLP, gelu
from drift.adapters.scaling import MapAdapter
from drift.core.errors import ConfigError

VAL_K = 10  # validation recall@VAL_K (capped by the pair items), as the paper's R@10
VAL_QUERIES = 1000  # validation pseudo-queries scored per epoch, at most (a seeded draw)
BLOCK = 1024  # pseudo-queries per block when searching for neighbours (bounds memory)
# Trained deviations from the warm start; AdamW decays these (toward zero), not the biases.
DECAYED = ("delta", "left", "right", "w1", "w2")


def _positive_int(owner: str, **values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"{owner}: {key} must be a positive integer, got {value!r}")


def _temperatures(value: Any, owner: str) -> list[float]:
    values = list(value) if isinstance(value, list | tuple) else [value]
    ok = values and all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf for v in values
    )
    if not ok:
        raise ConfigError(
            f"{owner}: temperature must be a positive number or a non-empty list of them (a grid "
            f"chosen on the validation pairs), got {value!r}"
        )
    return [float(v) for v in values]


def neighbours(
    queries: np.ndarray, base: np.ndarray, k: int, self_rows: np.ndarray | None = None
) -> np.ndarray:
    """Row ids [nq, k] of each query's top-k in `base` by inner product, best first; with
    `self_rows`, query i is base row self_rows[i] and is never its own neighbour."""
    import torch

    base_t = torch.from_numpy(np.ascontiguousarray(base, dtype=np.float32))
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], BLOCK):
        block = torch.from_numpy(np.ascontiguousarray(queries[start : start + BLOCK]))
        scores = block @ base_t.T
        if self_rows is not None:
            own = torch.from_numpy(np.asarray(self_rows[start : start + BLOCK], dtype=np.int64))
            scores[torch.arange(block.shape[0]), own] = -torch.inf
        out[start : start + block.shape[0]] = scores.topk(k, dim=1).indices.numpy()
    return out


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of `truth` found in the same row of `found`."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=1).sum(axis=1)
    return float(np.mean(hits / truth.shape[1]))


class RankingAdapter(MapAdapter):
    """Shared fit of the ranking adapters (module docstring); a subclass is one form.

    Args:
        n_positives: new-model neighbours per pseudo-query that count as its positives.
        temperature: softmax temperature on cosines, or a list of them (a grid chosen by the
            validation recall).
        distill: weight of the distillation term (0: off).
        lr: relative step size (module docstring).
        weight_decay: AdamW's decoupled weight decay of the trained deviations.
        batch_size: pseudo-queries per step.
        max_candidates: old vectors each step ranks against: the batch's rows and positives plus
            a random draw of the other training items up to this many (None: all of them).
        max_epochs, patience: early stopping on the validation recall (an epoch counts as an
            improvement only when it beats the best so far).
        probe_epochs: with a temperature grid, every value trains this many epochs, and only the
            best by validation recall then trains on to early stopping (the grid costs about
            probe_epochs per extra value instead of a whole fit each).
        device: torch device to train on ("cpu", "cuda", ...).
        dsm, dsm_bias, normalize_output: the shared output stage (off, off, on by default: a
            least-squares DSM would pull the map back toward regression).
    """

    uses_validation = True  # early stopping and the temperature grid

    def __init__(
        self,
        *,
        n_positives: int = 10,
        temperature: float | list[float] = 0.05,
        distill: float = 0.0,
        lr: float = 0.05,
        weight_decay: float = 0.0,
        batch_size: int = 256,
        max_candidates: int | None = 4096,
        max_epochs: int = 30,
        patience: int = 3,
        probe_epochs: int = 2,
        device: str = "cpu",
        dsm: bool = False,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        _positive_int(
            self.name,
            n_positives=n_positives,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            probe_epochs=probe_epochs,
        )
        self.temperature = _temperatures(temperature, self.name)
        if isinstance(temperature, int | float):
            self.temperature = self.temperature[0]
        if not (lr > 0 and weight_decay >= 0 and distill >= 0):
            raise ConfigError(
                f"{self.name}: need lr > 0, weight_decay >= 0 and distill >= 0, got {lr}, "
                f"{weight_decay} and {distill}"
            )
        self.n_positives, self.distill = int(n_positives), float(distill)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size, self.max_epochs = int(batch_size), int(max_epochs)
        self.patience, self.device = int(patience), str(device)
        self.probe_epochs = int(probe_epochs)
        if max_candidates is not None:
            _positive_int(self.name, max_candidates=max_candidates)
        self.max_candidates = None if max_candidates is None else int(max_candidates)

    # -- per form -----------------------------------------------------------------------------
    def _start(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        """The trained weights at the warm start (float64), with "start": OP's map."""
        raise NotImplementedError

    @staticmethod
    def _forward(p: dict[str, Any], start, x):
        """The form's map in torch (`p`: trained tensors, `start`: OP's map, fixed)."""
        raise NotImplementedError

    @staticmethod
    def _weights_of(p: dict[str, np.ndarray], start: np.ndarray) -> dict[str, np.ndarray]:
        """The served arrays (keyed by `_param_names()`) of the trained ones."""
        raise NotImplementedError

    # -- fit ----------------------------------------------------------------------------------
    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        x_new, x_old, x_new_val, x_old_val = given_or_held_out(
            x_new, x_old, x_new_val, x_old_val, rng, self.fit_info
        )
        n = x_new.shape[0]
        if n <= self.n_positives:
            raise ConfigError(
                f"{self.name}: {n} training pairs leave fewer than n_positives="
                f"{self.n_positives} neighbours per pseudo-query; lower n_positives"
            )
        self._warn_if_underdetermined(
            n, x_new.shape[1], "the Procrustes start is not unique outside the pairs' span"
        )
        init = self._start(x_new, x_old, rng)
        task = _Task.build(x_new, x_old, x_new_val, x_old_val, self.n_positives, rng)
        grid = self.temperature if isinstance(self.temperature, list) else [self.temperature]
        trainers = [_Trainer(self, init, task, t, seed) for t in grid]
        probe = min(self.probe_epochs, self.max_epochs) if len(grid) > 1 else 0
        for trainer in trainers if probe else ():
            trainer.run(until=probe)
        probed = [t.best_recall for t in trainers]
        best = int(np.argmax(probed))  # a tie: the earlier value
        trainers[best].run(until=self.max_epochs)
        fit = trainers[best].info()
        weights = fit.pop("weights")
        self.fit_info.update(fit)
        if len(grid) > 1:
            self.fit_info["temperature"] = {
                "grid": grid,
                "probe_epochs": probe,
                f"recall@{task.val_k}/val_after_probe": probed,
                "chosen": grid[best],
            }
        return {k: v.astype(np.float32) for k, v in weights.items()}

    def _map_hparams(self) -> dict[str, Any]:
        return {
            "n_positives": self.n_positives,
            "temperature": self.temperature,
            "distill": self.distill,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "max_candidates": self.max_candidates,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "probe_epochs": self.probe_epochs,
            "device": self.device,
        }


class _Task:
    """What training and validation score against: the training pairs, each training item's
    positives, and the validation pseudo-queries (at most VAL_QUERIES of the validation items,
    drawn with the seed) with their truth among all pair items."""

    def __init__(self, x, y, positives, x_val, y_all, val_rows, val_truth) -> None:
        self.x, self.y, self.positives = x, y, positives
        self.x_val, self.y_all = x_val, y_all
        self.val_rows, self.val_truth = val_rows, val_truth  # rows of y_all; their truth
        self.val_k = val_truth.shape[1]

    @classmethod
    def build(cls, x, y, x_val, y_val, n_positives: int, rng: np.random.Generator) -> _Task:
        n = x.shape[0]
        positives = neighbours(x, x, n_positives, self_rows=np.arange(n))
        x_all, y_all = np.concatenate([x, x_val]), np.concatenate([y, y_val])
        chosen = np.arange(x_val.shape[0])
        if chosen.size > VAL_QUERIES:
            chosen = np.sort(rng.choice(chosen.size, VAL_QUERIES, replace=False))
        val_k = min(VAL_K, x_all.shape[0] - 1)
        truth = neighbours(x_val[chosen], x_all, val_k, self_rows=n + chosen)
        return cls(x, y, positives, x_val[chosen], y_all, n + chosen, truth)

    def val_recall(self, mapped_val: np.ndarray) -> float:
        found = neighbours(mapped_val, self.y_all, self.val_k, self_rows=self.val_rows)
        return recall_at(found, self.val_truth)


def _unit_outputs(x: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random d x width matrix scaled to the data: x @ it has unit-variance entries (as the
    residual MLP's W1, drift/adapters/residual_mlp.py, for the same reason)."""
    rms_norm = math.sqrt(float(np.mean(np.einsum("ij,ij->i", x, x, dtype=np.float64))))
    return rng.standard_normal((x.shape[1], width)) / max(rms_norm, 1e-12)


def _learning_rates(lr: float, init: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray):
    """AdamW rate per weight: `lr` x (its layer's output size) / (the L1 norm of its input), so
    one `lr` moves every layer's output alike (as drift/adapters/residual_mlp.py explains)."""
    input_l1 = float(np.mean(np.abs(x).sum(axis=1, dtype=np.float64)))
    out_rms = math.sqrt(float(np.mean(np.square(y, dtype=np.float64))))
    rates = {"delta": lr * out_rms / input_l1, "bias": lr * out_rms}
    if "left" in init:  # x A: size of x A at the start; then (x A) B
        inner = float(np.sqrt(np.mean(np.square(x @ init["left"]))))
        inner_l1 = float(np.mean(np.abs(x @ init["left"]).sum(axis=1)))
        rates |= {"left": lr * inner / input_l1, "right": lr * out_rms / max(inner_l1, 1e-12)}
    if "w1" in init:  # pre-activations of size 1
        hidden_l1 = float(np.mean(np.abs(gelu(x @ init["w1"] + init["b1"])).sum(axis=1)))
        rates |= {"w1": lr / input_l1, "b1": lr, "w2": lr * out_rms / max(hidden_l1, 1e-12)}
    return {k: v for k, v in rates.items() if k in init}


class _Trainer:
    """AdamW on the listwise loss at one temperature, epoch by epoch, with early stopping on the
    validation recall; `run(until)` trains on from where the last call stopped, so a temperature
    grid can probe every value for a few epochs and train on only the best (module docstring).
    `info()` is the fit's info with its best served weights under "weights"."""

    def __init__(
        self, adapter: RankingAdapter, init: dict[str, Any], task: _Task, temperature, seed
    ) -> None:
        import torch  # here, not at the top: loading and applying a fitted adapter needs no torch

        if adapter.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"{adapter.name}: device {adapter.device!r} requested but CUDA is unavailable"
            )
        self.adapter, self.task, self.temperature = adapter, task, float(temperature)
        self.device = device = torch.device(adapter.device)
        self.start_np = init["start"]
        trained = {k: v for k, v in init.items() if k != "start"}
        self.start = torch.tensor(self.start_np, dtype=torch.float32, device=device)
        self.p = {
            k: torch.tensor(v, dtype=torch.float32, device=device, requires_grad=True)
            for k, v in trained.items()
        }
        self.rates = _learning_rates(adapter.lr, trained, task.x, task.y)
        groups = [
            {
                "params": [self.p[k]],
                "lr": self.rates[k],
                "weight_decay": adapter.weight_decay * (k in DECAYED),
            }
            for k in self.p
        ]
        # One fused kernel per step instead of a dozen tensor passes (CPU and CUDA).
        self.optimizer = torch.optim.AdamW(groups, fused=True)
        self.x = torch.from_numpy(task.x).to(device)
        self.y = torch.from_numpy(task.y).to(device)
        self.positives = torch.from_numpy(task.positives).to(device)
        self.x_val = torch.from_numpy(task.x_val).to(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.best_recall, self.best_epoch, self.best = self._val_recall(), 0, self._served()
        self.val_curve: list[float] = [self.best_recall]
        self.train_curve: list[float] = []
        self.stale, self.stopped = 0, False

    def _served(self) -> dict[str, np.ndarray]:
        current = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in self.p.items()}
        return self.adapter._weights_of(current, self.start_np)

    def _val_recall(self) -> float:
        import torch

        with torch.no_grad():
            mapped = self.adapter._forward(self.p, self.start, self.x_val)
            mapped = torch.nn.functional.normalize(mapped, dim=1)
        return self.task.val_recall(mapped.cpu().numpy())

    @property
    def epochs_run(self) -> int:
        return len(self.train_curve)

    def run(self, until: int) -> None:
        """Train on up to epoch `until` (counted from the start), or until early stopping."""
        import torch

        adapter, n = self.adapter, self.x.shape[0]
        while not self.stopped and self.epochs_run < until:
            order = torch.randperm(n, generator=self.generator).to(self.device)
            total = 0.0
            for begin in range(0, n, adapter.batch_size):
                rows = order[begin : begin + adapter.batch_size]
                loss = _loss(
                    adapter,
                    self.p,
                    self.start,
                    self.x,
                    self.y,
                    self.positives,
                    rows,
                    self.temperature,
                    self.generator,
                )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * rows.shape[0]
            self.train_curve.append(total / n)
            self.val_curve.append(self._val_recall())
            if self.val_curve[-1] > self.best_recall:
                self.best_recall, self.best_epoch, self.stale = (
                    self.val_curve[-1],
                    self.epochs_run,
                    0,
                )
                self.best = self._served()
            else:
                self.stale += 1
                self.stopped = self.stale >= adapter.patience

    def info(self) -> dict[str, Any]:
        import torch

        return {
            "weights": self.best,
            "temperature_used": self.temperature,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_recall": self.best_recall,
            "val_metric": f"recall@{self.task.val_k} of {self.task.x_val.shape[0]} validation "
            f"pseudo-queries among {self.task.y_all.shape[0]} pair items' old vectors",
            "learning_rates": self.rates,
            "train_curve": self.train_curve,
            "val_curve": self.val_curve,  # val_curve[0]: the OP start, before any step
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
        }


def _loss(adapter: RankingAdapter, p, start, x, y, positives, rows, temperature: float, generator):
    """Multi-positive listwise softmax over the candidates' old vectors (the pseudo-query's own
    row masked), plus `distill` x KL(new model's softmax || mapped query's). The candidates are
    every training item, or with `max_candidates` the batch's rows and positives plus a random
    draw of the others up to that many."""
    import torch

    n = x.shape[0]
    candidates = torch.arange(n, device=x.device)
    local = positives[rows]
    if adapter.max_candidates is not None and n > adapter.max_candidates:
        drawn = torch.randperm(n, generator=generator)[: adapter.max_candidates].to(x.device)
        candidates = torch.unique(torch.cat([rows, local.flatten(), drawn]))
        where = torch.full((n,), -1, dtype=torch.long, device=x.device)
        where[candidates] = torch.arange(candidates.shape[0], device=x.device)
        local, own = where[local], where[rows]
    else:
        own = rows
    queries = torch.nn.functional.normalize(adapter._forward(p, start, x[rows]), dim=1)
    batch = torch.arange(rows.shape[0], device=x.device)
    logits = queries @ y[candidates].T / temperature
    minus_inf = torch.tensor(-torch.inf, device=x.device)
    logits = logits.index_put((batch, own), minus_inf)  # a pseudo-query is not its own answer
    log_p = torch.log_softmax(logits, dim=1)
    loss = -log_p.gather(1, local).mean()
    if adapter.distill > 0:
        with torch.no_grad():
            target_logits = x[rows] @ x[candidates].T / temperature
            target = torch.softmax(target_logits.index_put_((batch, own), minus_inf), dim=1)
        kl = (target * (torch.log(target.clamp_min(1e-30)) - log_p.clamp_min(-1e4))).sum(dim=1)
        loss = loss + adapter.distill * kl.mean()
    return loss


@register_adapter("ranking_linear")
class RankingLinear(RankingAdapter):
    """x -> x W + b trained to rank (module docstring); exported as one affine map."""

    display = Display("Ranking (linear)", "#332288", "p")

    def _start(self, x, y, rng) -> dict[str, Any]:
        w = orthogonal_procrustes(x, y)
        return {"start": w, "delta": np.zeros_like(w), "bias": np.zeros(y.shape[1])}

    @staticmethod
    def _forward(p, start, x):
        return x @ (start + p["delta"]) + p["bias"]

    @staticmethod
    def _weights_of(p, start) -> dict[str, np.ndarray]:
        return {"weight": start + p["delta"], "bias": p["bias"]}

    # Served as the ridge adapter's affine map.
    _map, _param_names, _map_ops = Ridge._map, Ridge._param_names, Ridge._map_ops


@register_adapter("ranking_low_rank")
class RankingLowRank(RankingAdapter):
    """x -> x W_OP + x A B + b, with A B (rank `rank`) trained to rank; see RankingAdapter for
    the other arguments."""

    display = Display("Ranking (low-rank)", "#88CCEE", "h")

    def __init__(self, *, rank: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _positive_int(self.name, rank=rank)
        self.rank = int(rank)

    def _start(self, x, y, rng) -> dict[str, Any]:
        if self.rank > min(x.shape[1], y.shape[1]):
            raise ConfigError(
                f"{self.name}: rank {self.rank} exceeds min(d_new={x.shape[1]}, d_old={y.shape[1]})"
            )
        return {
            "start": orthogonal_procrustes(x, y),
            "left": _unit_outputs(x, self.rank, rng),
            "right": np.zeros((self.rank, y.shape[1])),
            "bias": np.zeros(y.shape[1]),
        }

    @staticmethod
    def _forward(p, start, x):
        return x @ start + (x @ p["left"]) @ p["right"] + p["bias"]

    @staticmethod
    def _weights_of(p, start) -> dict[str, np.ndarray]:
        return {"weight": start, "left": p["left"], "right": p["right"], "bias": p["bias"]}

    # Served as OP + low-rank (x R + x A B + b), which faiss's pre-transform folds.
    _map, _param_names = ProcrustesLowRank._map, ProcrustesLowRank._param_names
    _map_ops = ProcrustesLowRank._map_ops

    def _map_hparams(self) -> dict[str, Any]:
        return {"rank": self.rank, **super()._map_hparams()}


@register_adapter("ranking_mlp")
class RankingMLP(RankingAdapter):
    """x -> x W_lin + GELU(x W1 + b1) W2 + b trained to rank, W_lin from OP and W2 from zero;
    see RankingAdapter for the other arguments."""

    display = Display("Ranking (MLP)", "#AA4499", "8")

    def __init__(self, *, hidden: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _positive_int(self.name, hidden=hidden)
        self.hidden = int(hidden)

    def _start(self, x, y, rng) -> dict[str, Any]:
        w = orthogonal_procrustes(x, y)
        return {
            "start": w,
            "delta": np.zeros_like(w),
            "w1": _unit_outputs(x, self.hidden, rng),
            "b1": rng.uniform(-1.0, 1.0, self.hidden),
            "w2": np.zeros((self.hidden, y.shape[1])),
            "bias": np.zeros(y.shape[1]),
        }

    @staticmethod
    def _forward(p, start, x):
        import torch

        hidden = torch.nn.functional.gelu(x @ p["w1"] + p["b1"])
        return x @ (start + p["delta"]) + hidden @ p["w2"] + p["bias"]

    @staticmethod
    def _weights_of(p, start) -> dict[str, np.ndarray]:
        kept = {k: p[k] for k in ("w1", "b1", "w2", "bias")}
        return {"w_lin": start + p["delta"], **kept}

    # Served as the residual MLP.
    _map, _param_names, _map_ops = ResidualMLP._map, ResidualMLP._param_names, ResidualMLP._map_ops

    def _map_hparams(self) -> dict[str, Any]:
        return {"hidden": self.hidden, **super()._map_hparams()}
