"""Training: the one epoch loop (:mod:`~regexp.train.step`) and its engines' steps —
``fast`` (:mod:`~regexp.train.stacked`) and ``autograd`` (:mod:`~regexp.train.autograd`) —
chosen by :mod:`~regexp.train.loop`; builders from config (:mod:`~regexp.train.build`,
:mod:`~regexp.train.setup`) and evaluation."""
