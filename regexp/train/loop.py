"""One run's training: :func:`fit_setup` picks the engine (``trainer.engine``) and trains.

The engines share the training rules of :func:`regexp.train.step.train` and differ only
in their :class:`~regexp.train.step.Step`:

- ``fast`` (:mod:`regexp.train.stacked.fit`): hand-written backpropagation of the MLPs of
  :func:`regexp.model.mlp.mlp`, N ≥ 1 at once (a single run is a stack of one);
- ``autograd`` (:mod:`regexp.train.autograd`): any model, ``torch.optim``, autograd; the
  reference;
- ``vmap`` (:mod:`regexp.train.vmap`): N copies of any module by ``torch.func``.

``auto`` (the default) picks the fastest that trains the configuration
(:func:`choose_engine`): ``fast`` for an MLP, ``vmap`` for a stack of other modules
(the batched launcher's conv-net stacks), else ``autograd``. One INFO line says which
engine runs and why. The building blocks are re-exported here (:func:`prepare`,
:class:`Setup`, :class:`FitResult`, ...) for callers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from regexp.core.checks import check_choice
from regexp.core.regularizers import Regularizer
from regexp.data.prepare import Dataset
from regexp.train import vmap
from regexp.train.autograd import AutogradStep
from regexp.train.build import ENGINES
from regexp.train.setup import Setup, prepare
from regexp.train.stacked.fit import Member, fit_stacked, mlp_activation, unsupported
from regexp.train.step import EpochCallback, FitResult, epoch_rows, train

__all__ = [
    "ENGINES",
    "EpochCallback",
    "FitResult",
    "Setup",
    "choose_engine",
    "epoch_rows",
    "fit",
    "fit_setup",
    "prepare",
]

log = logging.getLogger(__name__)


def fit(
    model: nn.Module,
    data: Dataset,
    reg: Regularizer,
    mode: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    seed: int,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
    prox_metric: str = "identity",
    drop_last: bool = False,
) -> FitResult:
    """Train ``model`` (any ``nn.Module``) with ``optimizer`` (any ``torch.optim``) by
    autograd: :func:`regexp.train.step.train` of an
    :class:`~regexp.train.autograd.AutogradStep`, minibatch order seeded by ``seed``.

    ``mode="penalty"`` minimizes ``data_loss + reg(model)``; ``"proximal"`` takes the
    optimizer step on ``data_loss`` and then ``reg.prox_(model, lr)`` (or, with
    ``prox_metric="adaptive"``, the proximal step in the optimizer's metric).
    """
    step = AutogradStep(model, data, reg, mode, optimizer, prox_metric)
    return train(
        step,
        [seed],
        len(data.y_train),
        data.x_train.device,
        data.task,
        epochs,
        batch_size,
        patience,
        on_epoch,
        drop_last,
        engine="autograd",
    )[0]


def choose_engine(cfg: Mapping, s: Setup, n_models: int = 1) -> tuple[str, str]:
    """The engine that trains ``s = prepare(cfg)`` under ``trainer.engine``, and why.

    ``n_models``: how many models of this kind train together (the batched launcher asks
    with 2 or more for a job that may join a stack). ``auto`` picks the fastest engine
    that trains the configuration:

    - ``fast`` for the MLPs it covers (:func:`regexp.train.stacked.fit.unsupported`), at
      every N;
    - ``vmap`` for a stack (N ≥ 2) of any other module it covers
      (:func:`regexp.train.vmap.unsupported_setup`), e.g. conv nets;
    - ``autograd`` otherwise, and for a single run of such a module: at N = 1, vmap is
      slower than autograd (the default conv net on digits_images: 88 against 58 ms an
      epoch, one thread, BENCHMARKS.md); vmap pays off in stacks (20 ms a model-epoch at
      N = 27).

    Raises
    ------
    ValueError
        If ``trainer.engine`` is not one of :data:`ENGINES`, or names an engine that
        cannot train this configuration (the message says why).
    """
    asked = check_choice("trainer.engine", cfg["trainer"].get("engine", "auto"), ENGINES)
    if asked == "autograd":
        return "autograd", "trainer.engine=autograd (the reference)"
    if asked == "vmap":
        why = vmap.unsupported_setup(s)
        if why is not None:
            raise ValueError(
                f"trainer.engine=vmap cannot train this configuration: {why}; "
                "use trainer.engine=auto or autograd"
            )
        return "vmap", "trainer.engine=vmap"
    why = unsupported(s)
    if why is None and s.device.type != "cpu" and cfg["model"]["dropout"] > 0:
        why = "dropout off the CPU (the fast engine draws its masks on the CPU)"
    if asked == "fast":
        if why is not None:
            raise ValueError(
                f"trainer.engine=fast cannot train this configuration: {why}; "
                "use trainer.engine=auto or autograd"
            )
        return "fast", "trainer.engine=fast"
    if why is None:
        return "fast", "trainer.engine=auto: an MLP, hand-written backpropagation"
    if n_models == 1:
        return "autograd", (
            f"trainer.engine=auto, and the fast engine cannot train it: {why} "
            "(a single run of another module trains faster by autograd than by vmap)"
        )
    why_vmap = vmap.unsupported_setup(s)
    if why_vmap is None:
        return "vmap", (
            f"trainer.engine=auto, a stack of {n_models} models that the fast engine cannot "
            f"train ({why}): torch.func over the stacked copies"
        )
    return "autograd", (
        f"trainer.engine=auto, and neither the fast engine ({why}) nor the vmap engine "
        f"({why_vmap}) can train it"
    )


def fit_setup(cfg: Mapping, s: Setup, on_epoch: EpochCallback | None = None) -> FitResult:
    """Train the model of ``s = prepare(cfg)`` with ``cfg``'s trainer settings, with the
    engine of :func:`choose_engine` (logged at INFO); the result names it in ``engine``.
    The engines give the same results up to float reordering.
    """
    tr = cfg["trainer"]
    engine, why = choose_engine(cfg, s)
    log.info("engine %s: %s", engine, why)
    if engine == "fast":
        rng = s.rng_state if s.rng_state is not None else torch.get_rng_state()
        member = Member.from_setup(cfg, s, rng)
        return fit_stacked(
            [member],
            s.data,
            mlp_activation(s.model),
            s.opt_cfg,
            tr["epochs"],
            tr["batch_size"],
            s.patience,
            on_epoch,
            s.drop_last,
        )[0]
    if engine == "vmap":
        rng = s.rng_state if s.rng_state is not None else torch.get_rng_state()
        member = Member.from_setup(cfg, s, rng)
        step = vmap.VmapStep([member], s.data, s.opt_cfg)
        return train(
            step,
            [cfg["seed"]],
            len(s.data.y_train),
            s.data.x_train.device,
            s.data.task,
            tr["epochs"],
            tr["batch_size"],
            s.patience,
            on_epoch,
            s.drop_last,
            engine="vmap",
        )[0]
    return fit(
        s.model,
        s.data,
        s.reg,
        s.mode,
        s.optimizer,
        tr["epochs"],
        tr["batch_size"],
        cfg["seed"],
        s.patience,
        on_epoch,
        s.prox_metric,
        s.drop_last,
    )
