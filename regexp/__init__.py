"""regexp: how regularization shapes neural networks.

The regularizers and sparsity measures are a small library for any PyTorch training loop::

    from regexp import SparseGroupLasso, neuron_sparsity, threshold_

The notebook API trains configurations of ``regexp train`` and reads results back::

    result = regexp.run(["regularizer=l1", "lambda=1e-3"])  # the metrics row, a dict
    frame = regexp.load_results("outputs/multirun/...")  # sweep dir, run dir or CSV
    regexp.summarize(frame)  # mean and std over seeds per group

Importing regexp has no side effects: no matplotlib backend, no torch thread count; and
it imports only torch: the notebook API (Hydra, pandas, matplotlib) loads on first use.
"""

import importlib

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

# The notebook API, imported by __getattr__ on first use (pandas and Hydra load only then).
_LAZY = {
    "run": "regexp.api",
    "RunResult": "regexp.api",
    "load_results": "regexp.outputs.sweep",
    "summarize": "regexp.outputs.aggregate",
    "best": "regexp.outputs.selection",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regexp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


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
