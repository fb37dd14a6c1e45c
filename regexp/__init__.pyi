# The public names of regexp, one table: lazy_loader reads this stub (regexp/__init__.py)
# and imports each module on first use of a name; type checkers read it as the module
# (``name as name``: an explicit re-export).
from .api import RunResult as RunResult, run as run
from .core.penalties import (
    add_penalty_grad_ as add_penalty_grad_,
    group_norms as group_norms,
    penalty as penalty,
    prox_ as prox_,
)
from .core.regularizers import (
    L1 as L1,
    L2 as L2,
    REGULARIZERS as REGULARIZERS,
    Coefficients as Coefficients,
    ElasticNet as ElasticNet,
    GroupLasso as GroupLasso,
    NoRegularizer as NoRegularizer,
    Norm as Norm,
    Regularizer as Regularizer,
    SparseGroupLasso as SparseGroupLasso,
    WeightDecay as WeightDecay,
    make_regularizer as make_regularizer,
    selected_parameters as selected_parameters,
)
from .core.sparsity import (
    LayerSparsity as LayerSparsity,
    dead_units as dead_units,
    count_params_kept as count_params_kept,
    layer_sparsity as layer_sparsity,
    neuron_sparsity as neuron_sparsity,
    params_kept as params_kept,
    params_total as params_total,
    threshold_ as threshold_,
    weight_sparsity as weight_sparsity,
)
from .results.aggregate import summarize as summarize
from .results.selection import best as best
from .runs.collect import load_results as load_results
from .runs.compression import compress as compress
