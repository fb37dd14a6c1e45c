"""Models: the MLP (:mod:`~regexp.model.mlp`) and its checkpoints."""
