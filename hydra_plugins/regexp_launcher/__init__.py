"""Hydra plugins shipped with regexp: the ``batched`` launcher and the ``regexp`` sweeper."""
