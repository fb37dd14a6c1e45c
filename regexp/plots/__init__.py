"""Figures: a run's (:mod:`~regexp.plots.run`), a sweep's (:mod:`~regexp.plots.sweep`), the
shared style and point labels."""
