"""One configuration → what it trains with: :func:`prepare` builds a :class:`Setup`.

The data, the seeded model, the regularizer and its mode, and the optimizer settings;
:func:`regexp.train.loop.fit_setup` trains it with one of the engines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from regexp.core.regularizers import Regularizer
from regexp.data.prepare import Dataset, load_dataset
from regexp.model.build import build_model
from regexp.train.build import (
    build_regularizer,
    make_optimizer,
    resolve_device,
    resolve_prox_metric,
)


@dataclass
class Setup:
    """Everything an engine needs for one configuration, built by :func:`prepare`.

    ``optimizer`` (the ``torch.optim`` optimizer of config group ``optimizer``, with the
    regularizer's ``weight_decay`` on the weights) is built on first use: constructing
    one imports ``torch._dynamo``, about a second that the fast engine does not need.
    ``rng_state`` is the global RNG state right after the model's initialization: the
    stream its dropout masks are drawn from.
    """

    data: Dataset
    model: nn.Module
    reg: Regularizer
    mode: str
    opt_cfg: Mapping
    patience: int | None
    device: torch.device
    prox_metric: str = "identity"  # identity | adaptive (resolved, see resolve_prox_metric)
    drop_last: bool = False
    rng_state: torch.Tensor | None = None
    engine: str = "auto"  # trainer.engine, as asked (see regexp.train.loop.choose_engine)
    _optimizer: torch.optim.Optimizer | None = field(default=None, repr=False)

    @property
    def weight_decay(self) -> float:
        return getattr(self.reg, "weight_decay", 0.0)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.model, self.opt_cfg, self.weight_decay)
        return self._optimizer


def prepare(cfg: Mapping, data: Dataset | None = None) -> Setup:
    """Build the data, seeded model, regularizer and optimizer settings of a resolved config.

    ``cfg`` should have passed :func:`regexp.config.validate`, which checks every key with
    a one-line message; the builders called here check their own arguments too.

    ``data`` (already on the right device) skips loading when the caller has it. The model
    is built right after ``torch.manual_seed(cfg["seed"])``, so the global RNG state on
    return (also kept as ``rng_state``) is the one that draws the run's dropout masks.
    """
    tr, lam = cfg["trainer"], cfg["lambda"]
    patience = tr.get("early_stopping_patience")
    device = resolve_device(tr["device"])

    reg, mode = build_regularizer(cfg["regularizer"], lam)
    if data is None:
        data = load_dataset(**cfg["dataset"]).to(device)
    torch.manual_seed(cfg["seed"])
    m = cfg["model"]
    shape = (data.channels, *data.image_shape) if data.image_shape is not None else None
    model = build_model(m, data.n_features, data.n_outputs, shape).to(device)
    metric = resolve_prox_metric(cfg["regularizer"], cfg["optimizer"]["name"])
    drop_last = bool(tr.get("drop_last", False))
    rng = torch.get_rng_state()
    engine = tr.get("engine", "auto")
    return Setup(
        data, model, reg, mode, cfg["optimizer"], patience, device, metric, drop_last, rng, engine
    )
