"""The stacked engine: N MLPs of one architecture trained as one model.

:mod:`~regexp.train.stacked.model` holds the stacked parameters and the per-model maths,
:mod:`~regexp.train.stacked.optim` Adam/AdamW/SGD with a learning rate per model, and
:mod:`~regexp.train.stacked.fit` the training loop (:func:`fit_stacked`).
"""
