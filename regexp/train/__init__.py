"""Training: builders from config (:mod:`~regexp.train.build`), evaluation, the training loop
(:mod:`~regexp.train.loop`), hand-written backpropagation and the stacked engine."""
