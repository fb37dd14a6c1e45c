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

Importing regexp has no side effects: no matplotlib backend, no torch thread count. It is
also cheap: each public name (``regexp/__init__.pyi``) imports its module (and torch) on
first use (``lazy_loader``), so that ``regexp --help`` and ``regexp train --help`` answer
without loading torch.
"""

import lazy_loader

# The names and the modules that define them: regexp/__init__.pyi, the one table.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
