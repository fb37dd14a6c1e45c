"""The columns of ``metrics.csv`` and ``results.csv``, declared: labels, config and metrics.

Aggregation tells config columns from metric columns by these declarations, never by their
position in a file:

- labels: :data:`LABELS` (where a row came from, and how its job ended);
- config: the short columns (:data:`SHORT`), the identity (:data:`IDS`), the top-level
  keys of the config (:data:`TOP_LEVEL`) and every dotted key (``optimizer.betas``);
- metrics: the names in :data:`METRICS` and the columns starting with one of
  :data:`METRIC_PREFIXES`.
"""

from __future__ import annotations

# Where a row came from, how its job ended (and its tracker) and which training engine ran it.
LABELS = ("job", "source", "status", "error", "tracker_error", "engine")
# A run's identity: hashes of its resolved config and of its data (regexp.results.identity).
IDS = ("config_id", "data_id")
# Short config columns, each the copy of a dotted config key (None: derived from several).
SHORT = {
    "dataset": "dataset.name",
    "task": "dataset.task",
    "regularizer": "regularizer.name",
    "mode": "regularizer.mode",
    "prox_metric": None,  # regularizer.prox_metric resolved for the optimizer
    "lambda": "lambda",
    "l1_ratio": "regularizer.l1_ratio",
    "p": "regularizer.p",
    "seed": "seed",
    "hidden": "model.hidden",
    "architecture": None,  # inputs, hidden sizes and outputs
    "activation": "model.activation",
    "dropout": "model.dropout",
    "optimizer": "optimizer.name",
    "lr": "optimizer.lr",
    "epochs": "trainer.epochs",
    "batch_size": "trainer.batch_size",
    "drop_last": "trainer.drop_last",
    "threshold": "threshold",
}
# Keys at the config's top level (undotted when flattened).
TOP_LEVEL = (
    "lambda",
    "seed",
    "threshold",
    "resume",
    "objectives",
    "figures",
    "compress",
    "selection",
)
METRICS = (
    "epochs_run",
    "weight_sparsity",
    "params_total",
    "params_kept",
    "params_fraction",
    "train_seconds",
    "test_metric",
    # At or below chance on validation (R² <= 0 for regression): regexp.results.selection.
    "collapsed",
)
# kept_<layer> and units_<layer>: units per layer, added from sparsity.csv by readers of
# runs (regexp.reproduction.runs); removed_<layer>: units removed (regexp.results.selection).
# compressed_*: config key compress=true (regexp.runs.compression).
METRIC_PREFIXES = (
    "test_",
    "val_",
    "neuron_sparsity_",
    "kept_",
    "units_",
    "removed_",
    "compressed_",
)
# Text columns that pandas would otherwise read as numbers ("40" for one hidden layer).
TEXT_COLUMNS = {
    "job": str,
    "source": str,
    "hidden": str,
    "architecture": str,
    "error": str,
    "tracker_error": str,
    "config_id": str,
    "data_id": str,
    "compress_error": str,
}


def is_config(column: str) -> bool:
    """Whether ``column`` holds part of a run's config (or its identity)."""
    return column in SHORT or column in IDS or column in TOP_LEVEL or "." in column


def is_metric(column: str) -> bool:
    """Whether ``column`` holds an outcome of a run (averaged over seeds by a summary)."""
    return column in METRICS or column.startswith(METRIC_PREFIXES)
