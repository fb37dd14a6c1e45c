"""The Hydra application: the task function (:mod:`~regexp.hydra_app.task`), the sweep's
lifecycle callback, the report, objectives, the sweeper, the batched launcher and its stack
planning. Only :mod:`regexp.cli` and :mod:`regexp.api` sit above it."""
