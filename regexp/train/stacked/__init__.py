"""The fast engine: N ≥ 1 MLPs of one architecture trained as one model, by hand.

:mod:`~regexp.train.stacked.model` holds the stacked parameters and the per-model maths
(forward, closed-form backward, penalty, proximal steps), :mod:`~regexp.train.stacked.optim`
Adam/AdamW/SGD with a learning rate per model, and :mod:`~regexp.train.stacked.fit` the
step (:class:`~regexp.train.stacked.fit.FastStep`) and :func:`fit_stacked`.
"""
