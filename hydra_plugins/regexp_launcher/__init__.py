"""Hydra plugins shipped with regexp: the ``batched`` launcher."""
