"""regexp: how regularization shapes neural networks.

The regularizers and sparsity measures are a small library for any PyTorch training loop::

    from regexp import SparseGroupLasso, neuron_sparsity, threshold_

Importing regexp has no side effects: no matplotlib backend, no torch thread count.
"""

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
    "SparseGroupLasso",
    "WeightDecay",
    "add_penalty_grad_",
    "dead_units",
    "group_norms",
    "kept_params",
    "layer_sparsity",
    "make_regularizer",
    "neuron_sparsity",
    "params_kept",
    "params_total",
    "penalty",
    "prox_",
    "selected_parameters",
    "threshold_",
    "weight_sparsity",
]
