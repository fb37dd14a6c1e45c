"""The columns of ``metrics.csv`` and ``results.csv``, declared: labels, config and metrics.

Aggregation tells config columns from metric columns by these declarations, never by their
position in a file:

- labels: :data:`LABELS` (where a row came from, and how its job ended);
- config: the short columns (:data:`SHORT`, and those of the regularizer's options:
  :func:`short_columns`), the identity (:data:`IDS`), the top-level keys of the config
  (:data:`TOP_LEVEL`) and every dotted key (``optimizer.betas``);
- metrics: the names in :data:`METRICS` and the columns starting with one of
  :data:`METRIC_PREFIXES`.
"""

from __future__ import annotations

from collections.abc import Iterable

# Where a row came from, how its job ended (and its tracker) and which training engine ran it.
LABELS = ("job", "source", "status", "error", "tracker_error", "engine")
# A run's identity: hashes of its resolved config and of its data (regexp.results.identity).
IDS = ("config_id", "data_id")
# Short config columns, each the copy of a dotted config key (None: derived from several).
# The regularizer's options (l1_ratio, p, ...) have short columns too: short_columns.
SHORT = {
    "dataset": "dataset.name",
    "task": "dataset.task",
    "regularizer": "regularizer.name",
    "mode": "regularizer.mode",
    "prox_metric": None,  # regularizer.prox_metric resolved for the optimizer
    "lambda": "lambda",
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


# The config group whose options have short columns named as the options.
OPTION_GROUP = "regularizer"


def short_columns(columns: Iterable[str]) -> dict[str, str | None]:
    """:data:`SHORT`, and the short columns of the regularizer's options among ``columns``.

    A regularizer's options are its class's (``Regularizer.options`` in
    :mod:`regexp.core.regularizers`, e.g. ``l1_ratio``; this module, free of torch, does
    not import them): ``metrics.csv`` holds each option set as the short column ``<option>``
    beside its dotted key ``regularizer.<option>``. So an undotted column ``c`` of
    ``columns`` that is not in :data:`SHORT` and appears beside ``regularizer.c`` is the
    short copy of ``regularizer.c``.
    """
    columns = [str(c) for c in columns]
    present = set(columns)
    options = {
        c: f"{OPTION_GROUP}.{c}"
        for c in columns
        if "." not in c and c not in SHORT and f"{OPTION_GROUP}.{c}" in present
    }
    return SHORT | options


def is_config(column: str, columns: Iterable[str] = ()) -> bool:
    """Whether ``column`` of a table with ``columns`` holds part of a run's config (or its
    identity); a regularizer option's short column is one beside its dotted key
    (:func:`short_columns`)."""
    if column in SHORT or column in IDS or column in TOP_LEVEL or "." in column:
        return True
    return column in short_columns(columns)


def is_metric(column: str) -> bool:
    """Whether ``column`` holds an outcome of a run (averaged over seeds by a summary)."""
    return column in METRICS or column.startswith(METRIC_PREFIXES)
