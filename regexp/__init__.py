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
Python's ``random`` state is left as it was. It is also cheap: each public name
(``regexp/__init__.pyi``) imports its module (and torch) on first use (``lazy_loader``), so
that ``regexp --help`` and ``regexp train --help`` answer without loading torch.
"""

import random

import lazy_loader

# The names and the modules that define them: regexp/__init__.pyi, the one table.
_lazy_getattr, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)


def __getattr__(name: str) -> object:
    """``regexp.<name>``: its module, imported on first use, leaves Python's ``random``
    state as it was (rich and scikit-learn draw from it when imported)."""
    state = random.getstate()
    try:
        return _lazy_getattr(name)
    finally:
        random.setstate(state)
