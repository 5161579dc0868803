"""Residual MLP: x -> x @ W_lin + GELU(x @ W1 + b1) @ W2 + b (paper: hidden 256, GELU).

The linear path W_lin (d_new -> d_old, so the "residual" works when the dimensions differ) starts
from the ridge solution with its bias (`init="ridge"`, default: the least-squares linear map, so
the MLP's validation loss starts at the best linear fit's; `ridge_alpha` may be a grid, chosen by
the start's validation cosine as for the ridge adapter, drift/adapters/penalty.py) or the
Procrustes solution (`init="procrustes"`, zero bias); W2 starts at zero, so training starts exactly
at that linear map and the hidden layer learns only what it fails to explain. W1 is scaled to the
data (unit-variance pre-activations on the training inputs, b1 uniform in [-1, 1]) rather than
torch.nn.Linear's default range, which on unit vectors leaves GELU in its nearly linear range (see
`_initial_weights`).

Training (torch, CPU by default): AdamW with decoupled weight decay on the three matrices, not on
the biases: W1 and W2 decay toward zero, W_lin toward its start (`_Network`), which is already the
regularised linear fit (ridge) or the one the pairs determine best (Procrustes); decay toward zero
would pull the linear path away from it, and more the longer the hidden layer trains. Minibatches
are shuffled; the loss is "cosine" (1 - cos(mapped, old), default: what ranking by inner product
with unit vectors cares about) or "mse" (squared L2 distance, summed over dimensions, averaged
over pairs). The learning rate rises linearly over the first epoch, then stays constant.

`lr` is a *relative* step, turned into one AdamW learning rate per weight (`_learning_rates`).
Adam moves every weight by about its learning rate per step whatever the gradient's size, so a
step changes a layer's output by up to that rate times the L1 norm of the layer's input. Each
weight's rate is therefore `lr` x (the size of what its layer outputs) / (the L1 norm of its
input): pre-activations of size 1 for W1 and b1, coordinates of size rms(old vectors) for W_lin,
W2 and b. With one rate for all (the first version: 3e-4), a step moved the output through W2
and W_lin about 115x and 20x more, relative to its size, than the pre-activations through W1
(768 -> 384, the data of scripts/bench_adapter_fit.py): a rate small enough to keep the linear
start intact left W1, which has to learn the nonlinear features, nearly frozen, and the fit ended
where it began (best epoch 0), on planted nonlinear drift too.

After every epoch the loss on the validation pairs is computed; an epoch improves on the best so
far only when it lowers that loss by more than `min_delta`, training stops after `patience` epochs
without such an improvement or at `max_epochs`, and the best weights (possibly the initial linear
map itself: `fit_info["best_epoch"] == 0`) are restored. Without validation pairs, 20% of the
training pairs are held out (chosen with the seed). Everything random (hidden init, split,
shuffling) comes from the seed, with no global RNG touched; on CPU two fits with one seed give
identical weights.

The fitted weights are numpy arrays and `transform` runs in numpy (exact-erf GELU, as torch's
default), so saving, loading and applying an adapter need no torch. DSM, when on (default, as in
the paper), is fitted in closed form on the trained network's outputs, not learned jointly: a
learned per-dimension scale would be redundant with W_lin, W2 and b (drift/adapters/scaling.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.special

from drift.adapters.base import Display, register_adapter
from drift.adapters.baselines import RidgePath
from drift.adapters.penalty import (
    Candidate,
    PenalisedMap,
    Penalty,
    check_penalty,
    given_or_held_out,
)
from drift.adapters.procrustes import orthogonal_procrustes
from drift.core.errors import ConfigError

logger = logging.getLogger(__name__)

LOSSES = ("cosine", "mse")
INITS = ("procrustes", "ridge")
MATRICES = ("w_lin", "w1", "w2")  # weight decay applies to these (_Network), not to biases


def gelu(z: np.ndarray) -> np.ndarray:
    """Exact GELU, z * Phi(z), matching torch.nn.functional.gelu(approximate="none")."""
    return 0.5 * z * (1.0 + scipy.special.erf(z * (1.0 / math.sqrt(2.0))))


@register_adapter("residual_mlp")
class ResidualMLP(PenalisedMap):
    """One-hidden-layer GELU MLP plus a linear path; see the module docstring.

    Args:
        hidden: hidden width.
        loss: "cosine" or "mse".
        init: start of the linear path, "procrustes" or "ridge".
        ridge_alpha: relative ridge penalty of the start when init="ridge" (see `RidgePath`), or
            a list of them to choose from on the validation pairs (drift/adapters/penalty.py).
        lr: relative step size, scaled per weight into AdamW learning rates (module docstring).
        weight_decay: AdamW's (decoupled) weight decay: of W1 and W2 toward zero, of W_lin toward
            its start.
        batch_size: pairs per step.
        max_epochs, patience, min_delta: early stopping on the validation loss (an epoch counts
            as an improvement when it lowers the best loss so far by more than min_delta).
        device: torch device to train on ("cpu", "cuda", "cuda:1", ...).
        dsm: diagonal scaling after the network (on by default, as in the paper).
        dsm_bias, normalize_output: the shared output stage (drift.adapters.scaling).
    """

    uses_validation = True  # early stopping
    penalty_name = "ridge_alpha"
    display = Display("MLP", "#009E73", "D")
    hparam_columns = {"mlp_hidden": "hidden", "mlp_loss": "loss"}

    def __init__(
        self,
        *,
        hidden: int = 256,
        loss: str = "cosine",
        init: str = "ridge",
        ridge_alpha: Penalty = 1e-2,
        lr: float = 0.3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 30,
        patience: int = 8,
        min_delta: float = 1e-4,
        device: str = "cpu",
        dsm: bool = True,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        if loss not in LOSSES:
            raise ConfigError(f"residual_mlp: loss must be one of {LOSSES}, got {loss!r}")
        if init not in INITS:
            raise ConfigError(f"residual_mlp: init must be one of {INITS}, got {init!r}")
        for key, value in [
            ("hidden", hidden),
            ("batch_size", batch_size),
            ("max_epochs", max_epochs),
            ("patience", patience),
        ]:
            if int(value) != value or value < 1:
                raise ConfigError(f"residual_mlp: {key} must be a positive integer, got {value!r}")
        if not lr > 0 or not weight_decay >= 0 or not min_delta >= 0:
            raise ConfigError(
                "residual_mlp: need lr > 0, weight_decay >= 0 and min_delta >= 0, got "
                f"{lr}, {weight_decay} and {min_delta}"
            )
        self.hidden, self.loss, self.init = int(hidden), loss, init
        self.ridge_alpha = check_penalty(ridge_alpha, "residual_mlp: ridge_alpha")
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size, self.max_epochs = int(batch_size), int(max_epochs)
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.device = str(device)

    # -- fit ----------------------------------------------------------------------------------
    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        x_new, x_old, x_new_val, x_old_val = given_or_held_out(
            x_new, x_old, x_new_val, x_old_val, rng, self.fit_info
        )
        start = (
            f"the ridge term (ridge_alpha={self.ridge_alpha}) dominates the linear start"
            if self.init == "ridge"
            else "the Procrustes start is not unique outside the pairs' span"
        )
        self._warn_if_underdetermined(
            x_new.shape[0],
            x_new.shape[1],
            f"{start}, and only early stopping keeps the hidden layer from fitting the pairs",
        )
        init = self._initial_weights(x_new, x_old, x_new_val, x_old_val, rng, seed)
        weights = _train(self, init, (x_new, x_old), (x_new_val, x_old_val), seed)
        return {k: v.astype(np.float32) for k, v in weights.items()}

    def _initial_weights(
        self, x, y, x_val, y_val, rng: np.random.Generator, seed: int
    ) -> dict[str, np.ndarray]:
        d_in, d_out = x.shape[1], y.shape[1]
        # Unit vectors have coordinates of size 1/sqrt(d), so torch.nn.Linear's default range
        # (which assumes coordinates of size 1) would give pre-activations of about 1/sqrt(3d),
        # where GELU is nearly linear plus quadratic. Scale W1 to the data instead: unit-variance
        # pre-activations on the training inputs, with biases spreading the kinks over [-1, 1].
        rms_norm = math.sqrt(float(np.mean(np.einsum("ij,ij->i", x, x, dtype=np.float64))))
        hidden = {
            "w1": rng.standard_normal((d_in, self.hidden)) / max(rms_norm, 1e-12),
            "b1": rng.uniform(-1.0, 1.0, self.hidden),
            "w2": np.zeros((self.hidden, d_out)),
        }
        if self.init == "procrustes":
            return {"w_lin": orthogonal_procrustes(x, y), "bias": np.zeros(d_out), **hidden}

        def starts(x_fit, y_fit, grid: tuple[float, ...]) -> Iterator[Candidate]:
            path = RidgePath(x_fit, y_fit)
            for alpha in grid:
                fit = path.fit(alpha)
                yield Candidate({"w_lin": fit.weight, "bias": fit.bias, **hidden}, {})

        # W2 = 0: each candidate start maps as its ridge map does.
        return self._fit_penalised(starts, x, y, x_val, y_val, seed)

    # -- apply --------------------------------------------------------------------------------
    def _map(self, x: np.ndarray) -> np.ndarray:
        w = self._weights
        return x @ w["w_lin"] + gelu(x @ w["w1"] + w["b1"]) @ w["w2"] + w["bias"]

    def _param_names(self) -> tuple[str, ...]:
        return ("w_lin", "w1", "b1", "w2", "bias")

    def _map_ops(self) -> list[dict[str, Any]]:
        hidden = [
            {"op": "matmul", "weight": "w1"},
            {"op": "add", "value": "b1"},
            {"op": "gelu"},
            {"op": "matmul", "weight": "w2"},
        ]
        return [
            {"op": "sum", "branches": [[{"op": "matmul", "weight": "w_lin"}], hidden]},
            {"op": "add", "value": "bias"},
        ]

    def _map_hparams(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "loss": self.loss,
            "init": self.init,
            "ridge_alpha": self.ridge_alpha,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "device": self.device,
        }


def _learning_rates(
    lr: float, init: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    """AdamW learning rate per weight: `lr` x (its layer's output size) / (L1 norm of its input).

    Measured on the training pairs at the initial weights; see the module docstring for why.
    """
    input_l1 = float(np.mean(np.abs(x).sum(axis=1, dtype=np.float64)))
    hidden = gelu(x @ init["w1"] + init["b1"])
    hidden_l1 = float(np.mean(np.abs(hidden).sum(axis=1)))
    out_rms = math.sqrt(float(np.mean(np.square(y, dtype=np.float64))))
    return {
        "w_lin": lr * out_rms / input_l1,
        "w1": lr / input_l1,  # pre-activations start with unit variance
        "b1": lr,
        "w2": lr * out_rms / hidden_l1,
        "bias": lr * out_rms,
    }


class _Network:
    """The MLP as torch tensors, for training.

    W_lin is trained as W_start + D, D starting at zero: the gradients (and so Adam's steps) are
    those of W_lin, but AdamW's decoupled decay of D (D <- D - rate * weight_decay * D) pulls W_lin
    toward its start rather than toward zero. W1 and W2 decay toward zero as AdamW decays any
    weight; the biases do not decay.
    """

    def __init__(self, init: dict[str, np.ndarray], device) -> None:
        import torch

        self.start = torch.tensor(init["w_lin"], dtype=torch.float32, device=device)
        self.params = {
            k: torch.tensor(
                np.zeros_like(v) if k == "w_lin" else v,
                dtype=torch.float32,
                device=device,
                requires_grad=True,
            )
            for k, v in init.items()
        }

    def forward(self, inputs):
        import torch

        p = self.params
        hidden = torch.nn.functional.gelu(inputs @ p["w1"] + p["b1"])
        return inputs @ (self.start + p["w_lin"]) + hidden @ p["w2"] + p["bias"]

    def optimizer(self, rates: dict[str, float], weight_decay: float):
        """AdamW with one learning rate per weight (`rates`) and decay on MATRICES only."""
        import torch

        return torch.optim.AdamW(
            [
                {
                    "params": [self.params[k]],
                    "lr": rate,
                    "weight_decay": weight_decay if k in MATRICES else 0.0,
                }
                for k, rate in rates.items()
            ]
        )

    def weights(self) -> dict[str, np.ndarray]:
        """The current weights as float64 numpy arrays (W_lin = W_start + D)."""
        arrays = {k: v.detach() for k, v in self.params.items()}
        arrays["w_lin"] = self.start + arrays["w_lin"]
        return {k: v.cpu().numpy().astype(np.float64) for k, v in arrays.items()}


def _train(mlp: ResidualMLP, init: dict[str, np.ndarray], train, val, seed: int):
    """AdamW with early stopping; returns the best weights as float64 numpy arrays."""
    import torch  # here, not at the top: loading and applying a fitted MLP needs no torch

    if mlp.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"residual_mlp: device {mlp.device!r} requested but CUDA is unavailable")
    device = torch.device(mlp.device)
    network = _Network(init, device)
    x, y = (torch.from_numpy(a).to(device) for a in train)
    x_val, y_val = (torch.from_numpy(a).to(device) for a in val)
    rates = _learning_rates(mlp.lr, init, *train)
    optimizer = network.optimizer(rates, mlp.weight_decay)
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / mlp.batch_size)
    # Linear warmup over the first epoch: Adam's first steps are nearly sign(gradient) x rate.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / steps_per_epoch)
    )

    def loss_fn(pred, target):
        if mlp.loss == "cosine":
            return 1.0 - torch.nn.functional.cosine_similarity(pred, target, dim=1).mean()
        return (pred - target).pow(2).sum(dim=1).mean()

    def val_loss() -> float:
        with torch.no_grad():
            return float(loss_fn(network.forward(x_val), y_val))

    generator = torch.Generator().manual_seed(seed)
    best_loss, best_epoch = val_loss(), 0
    best = network.weights()
    train_curve: list[float] = []
    val_curve = [best_loss]
    stale = 0
    for epoch in range(1, mlp.max_epochs + 1):
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, mlp.batch_size):
            idx = order[start : start + mlp.batch_size]
            loss = loss_fn(network.forward(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * idx.shape[0]
        train_curve.append(total / n)
        val_curve.append(val_loss())
        if val_curve[-1] < best_loss - mlp.min_delta:
            best_loss, best_epoch, stale = val_curve[-1], epoch, 0
            best = network.weights()
        else:
            stale += 1
        logger.info(
            "residual_mlp epoch %d/%d: train loss %.5f, val loss %.5f (best: epoch %d)",
            epoch,
            mlp.max_epochs,
            train_curve[-1],
            val_curve[-1],
            best_epoch,
        )
        if stale >= mlp.patience:
            logger.info("residual_mlp: stopped early, %d epochs without improvement", stale)
            break
    mlp.fit_info.update(
        {
            "epochs_run": len(train_curve),
            "best_epoch": best_epoch,
            "best_val_loss": best_loss,
            "loss": mlp.loss,
            "learning_rates": rates,
            "train_curve": train_curve,
            "val_curve": val_curve,  # val_curve[0]: the initial linear map, before any step
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
        }
    )
    return best
