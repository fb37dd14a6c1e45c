"""regexp: how regularization shapes neural networks.

The regularizers and sparsity measures are a small library for any PyTorch training loop::

    from regexp import SparseGroupLasso
    from regexp import neuron_sparsity
    from regexp import threshold_

The notebook API trains configurations of ``regexp train`` and reads results back::

    result = regexp.run(["regularizer=l1", "lambda=1e-3"])  # the metrics row, a dict
    frame = regexp.load_results("outputs/multirun/...")  # sweep dir, run dir or CSV
    regexp.summarize(frame)  # mean and std over seeds per group
    regexp.best(frame)  # the λ of each group chosen on the validation metric

Importing regexp has no side effects: no matplotlib backend, no torch thread count, and
Python's ``random`` state is left as it was. It is
also cheap: each name below imports its module (and torch) on first use, so that
``regexp --help`` and ``regexp train --help`` answer without loading torch.
"""

from __future__ import annotations

import importlib
import random
from typing import TYPE_CHECKING, Any

# Each public name and the module that defines it.
_EXPORTS = {
    **dict.fromkeys(
        ["add_penalty_grad_", "group_norms", "penalty", "prox_"], "regexp.core.penalties"
    ),
    **dict.fromkeys(
        [
            "L1",
            "L2",
            "REGULARIZERS",
            "Coefficients",
            "ElasticNet",
            "GroupLasso",
            "NoRegularizer",
            "Norm",
            "Regularizer",
            "SparseGroupLasso",
            "WeightDecay",
            "make_regularizer",
            "selected_parameters",
        ],
        "regexp.core.regularizers",
    ),
    **dict.fromkeys(
        [
            "LayerSparsity",
            "dead_units",
            "kept_params",
            "layer_sparsity",
            "neuron_sparsity",
            "params_kept",
            "params_total",
            "threshold_",
            "weight_sparsity",
        ],
        "regexp.core.sparsity",
    ),
    # The notebook API (Hydra, pandas and matplotlib load with it).
    "run": "regexp.api",
    "RunResult": "regexp.api",
    "load_results": "regexp.runs.collect",
    "summarize": "regexp.results.aggregate",
    "best": "regexp.results.selection",
    "compress": "regexp.runs.compression",
}

__all__ = [
    "L1",
    "L2",
    "REGULARIZERS",
    "Coefficients",
    "ElasticNet",
    "GroupLasso",
    "LayerSparsity",
    "NoRegularizer",
    "Norm",
    "Regularizer",
    "RunResult",
    "SparseGroupLasso",
    "WeightDecay",
    "add_penalty_grad_",
    "best",
    "compress",
    "dead_units",
    "group_norms",
    "kept_params",
    "layer_sparsity",
    "load_results",
    "make_regularizer",
    "neuron_sparsity",
    "params_kept",
    "params_total",
    "penalty",
    "prox_",
    "run",
    "selected_parameters",
    "summarize",
    "threshold_",
    "weight_sparsity",
]


def __getattr__(name: str) -> Any:
    """``regexp.<name>``: import the module that defines ``name`` on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'regexp' has no attribute {name!r}")
    state = random.getstate()  # rich and scikit-learn draw from it when imported
    try:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    finally:
        random.setstate(state)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from regexp.core.penalties import add_penalty_grad_, group_norms, penalty, prox_
    from regexp.core.regularizers import (
        L1,
        L2,
        REGULARIZERS,
        Coefficients,
        ElasticNet,
        GroupLasso,
        NoRegularizer,
        Norm,
        Regularizer,
        SparseGroupLasso,
        WeightDecay,
        make_regularizer,
        selected_parameters,
    )
    from regexp.core.sparsity import (
        LayerSparsity,
        dead_units,
        kept_params,
        layer_sparsity,
        neuron_sparsity,
        params_kept,
        params_total,
        threshold_,
        weight_sparsity,
    )
