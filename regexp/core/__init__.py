"""The maths, as pure torch: penalties and proximal operators, regularizers, sparsity, metrics.

Nothing here imports Hydra, pandas or matplotlib, or another regexp package.
"""
