"""Validation of a whole run config: one declarative table, checked once per run.

:data:`PARAMETERS` says, for every config key that code reads, what it allows (in the
style of scikit-learn's ``_parameter_constraints``): a type and range, a set of choices,
whether the key may be absent, and for a group's choice-specific keys the choice they
belong to (``optimizer.momentum`` is SGD's). :data:`RULES` are the constraints that span
keys (``dataset.val_size + dataset.test_size < 1``, proximal mode's needs). The keys a
group may hold are the table's keys of that group (its choice's), so a key that no code
reads (``+trainer.foo=1``, ``+optimizer.momentum=0.9`` with Adam) is refused too.

:func:`validate` is the one check of a resolved config (the dict that ``regexp train``
composes with Hydra), run once per run before anything is loaded or trained: by the
``regexp train`` of one run (:class:`regexp.hydra_app.lifecycle.SweepLifecycle`, before the
run directory exists), by each job of a sweep (the task of ``regexp train -m``, or the
batched launcher's plan) and by :func:`regexp.run`. The builders it guards
(:func:`regexp.model.mlp.mlp`, :func:`regexp.data.prepare.load_dataset`,
:func:`regexp.train.build.make_optimizer`, :func:`regexp.train.loop.prepare`) trust a
validated config. Every error is a ``ValueError`` whose message names the config key,
the bad value and what is allowed, e.g. ``lambda must be a finite number >= 0, got -1``.

The schemas of the config files (:func:`schema`) are derived from the same table and
stored in Hydra's ConfigStore (:func:`register_schemas`); each shipped YAML file names its
schema in its defaults list, and :func:`composition_error` words Hydra's error for a value
a schema refuses as the table's one line.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import (
    MISSING,
    AnyNode,
    DictConfig,
    FloatNode,
    IntegerNode,
    ListConfig,
    OmegaConf,
    StringNode,
)

from regexp.core.checks import check_choice, check_int, check_real, check_rule
from regexp.core.regularizers import REGULARIZERS, make_regularizer
from regexp.data.images import IMAGE_SETS
from regexp.data.prepare import SCALERS, TASKS
from regexp.data.sources import BUILTIN_TASKS, LOADERS
from regexp.model.build import MODELS
from regexp.model.mlp import ACTIVATIONS, INITS
from regexp.train.build import (
    DEVICES,
    ENGINES,
    MODES,
    OPTIMIZERS,
    PROX_METRICS,
    resolve_device,
    resolve_prox_metric,
)

# Config key ``figures``: whether a run draws its three figures (regexp.runs.run_files).
FIGURES = ("auto", "always", "never")
# Config key ``selection.sparsity``: what a sweep's best.csv counts as sparsest (the keys of
# regexp.results.selection.SPARSITY: parameters kept, or input features kept).
SELECTION_SPARSITY = ("params", "inputs")
# torch.manual_seed takes seeds modulo 2**32: larger ones would alias smaller ones.
SEED_LIMIT = 2**32
# The top level of a run config: its groups, and its own keys (regexp.results.schema.TOP_LEVEL
# lists the same keys for the results' columns). Nothing else is accepted (check_keys).
GROUPS = ("dataset", "model", "regularizer", "optimizer", "trainer", "logger")
TOP_LEVEL_KEYS = (
    "lambda",
    "seed",
    "threshold",
    "resume",
    "objectives",
    "figures",
    "compress",
    "selection",
)
# Groups of the defaults list that select other files and add no key of their own.
SELECTORS = ("experiment", "hparams_search", "hydra")


def unknown_key_message(key: str) -> str:
    """The one line for a top-level ``key`` that no code reads: the closest known key and
    every key allowed."""
    known = (*TOP_LEVEL_KEYS, *GROUPS)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return (
        f"'{key}' is not a config key (with or without +); {hint}the top-level keys are: "
        + ", ".join(TOP_LEVEL_KEYS)
        + "; the groups: "
        + ", ".join(GROUPS)
    )


def check_overrides(overrides: list[str]) -> None:
    """Refuse, with a one-line ``ValueError``, what Hydra would answer with a multi-line
    error: an override its grammar cannot parse (a value with spaces and brackets,
    parentheses or ``=``: the message says to quote it) and a top-level key that is not in
    the config (Hydra's own message suggests the ``+``, which :func:`check_keys` refuses
    too). Arguments without ``=`` (Hydra's flags and their values) are skipped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for arg in overrides:
        if not isinstance(arg, str) or "=" not in arg:
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException as err:
            key, _, value = arg.partition("=")
            reason = str(err).strip().splitlines()[0].strip()
            raise ValueError(
                f"cannot read the override '{arg}' ({reason}); quote a value with spaces or "
                f"any of ()[]{{}}=,: '{key}=\"{value}\"' (on a shell, within single quotes)"
            ) from None
        key = override.key_or_group
        top = "." not in key and "/" not in key and override.package is None
        known = (*GROUPS, *TOP_LEVEL_KEYS, *SELECTORS)
        if top and override.type == OverrideType.CHANGE and key not in known:
            raise ValueError(unknown_key_message(key))


def check_keys(cfg: Mapping) -> None:
    """Refuse a top-level key that is neither a group nor one of :data:`TOP_LEVEL_KEYS`
    (``+lamdba=0.5`` on the command line, in ``regexp.run`` or in an experiment file),
    with :func:`unknown_key_message`."""
    unknown = sorted(str(k) for k in cfg if k not in GROUPS and k not in TOP_LEVEL_KEYS)
    if unknown:
        raise ValueError(unknown_key_message(unknown[0]))


# --- constraints: each checks one value and raises ValueError naming the key -----------

Check = Callable[[str, Any], None]


def typed(check: Check, kind: Any) -> Check:
    """``check``, marked with the type of its key's field in the key's Hydra schema
    (:func:`schema`): a value Hydra cannot convert to ``kind`` is refused while the config
    is composed, and :func:`composition_error` words it as ``check`` does. Unmarked checks
    are ``Any`` there (their values are checked by :func:`validate` alone)."""
    check.kind = kind  # type: ignore[attr-defined]
    return check


def real(low: float, high: float | None = None, *, open_low=False, open_high=False) -> Check:
    """A finite real number in ``[low, high]`` (``open_*`` exclude an end; bools refused).

    ``Any`` in the schemas: OmegaConf's ``float`` node would store ``lambda=-1`` as ``-1.0``,
    so that the messages and ``metrics.csv`` would no longer show the value as it was given.
    """
    return lambda key, v: check_real(key, v, low, high, open_low=open_low, open_high=open_high)


def integer(low: int, high: int | None = None) -> Check:
    """An int in ``[low, high)`` (``high=None``: unbounded; bools refused)."""
    return typed(lambda key, v: check_int(key, v, low, high), int)


def options(choices: Sequence[str]) -> Check:
    """One of ``choices`` (kept as the check's ``choices``: a group's choices are those of
    its ``name`` key, each with its schema)."""
    check = typed(lambda key, v: check_choice(key, v, tuple(choices)), str)
    check.choices = tuple(choices)  # type: ignore[attr-defined]
    return check


def boolean(key: str, value: Any) -> None:
    """``true`` or ``false``. (``Any`` in the schemas: OmegaConf's ``bool`` would turn
    ``yes``, ``on`` and ``1`` into ``true``, which this check refuses.)"""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")


def nullable(check: Check, allowed: str) -> Check:
    """``null``, or a value that ``check`` allows; ``allowed`` says both in words."""

    def run(key: str, value: Any) -> None:
        if value is None:
            return
        try:
            check(key, value)
        except ValueError:
            raise ValueError(f"{key} must be {allowed}, got {value!r}") from None

    kind = getattr(check, "kind", Any)
    return typed(run, Any if kind is Any else kind | None)


def sizes(key: str, value: Any, *, empty: bool = False) -> None:
    """A list of positive ints, non-empty unless ``empty`` (layer sizes)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{key} must be a list of positive ints, got {value!r}")
    if not empty and len(value) == 0:
        raise ValueError(f"{key} must be a non-empty list of positive ints, got {value!r}")
    if any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in value):
        raise ValueError(f"{key} sizes must be positive ints, got {list(value)}")


typed(sizes, list[int])


def odd_size(key: str, value: Any) -> None:
    """An odd positive int (a kernel size with same padding)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"{key} must be an odd positive int, got {value!r}")


def folder_path(key: str, value: Any) -> None:
    """A non-empty string: a folder (``~`` expanded where it is used)."""
    if not (isinstance(value, str) and value):
        raise ValueError(f"{key} must be a folder path, got {value!r}")


def betas(key: str, value: Any) -> None:
    """Two numbers in ``[0, 1)`` (Adam's ``betas``)."""
    if isinstance(value, str) or not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{key} must be a list of two numbers in [0, 1), got {value!r}")
    for beta in value:
        check_real(key, beta, 0.0, 1.0, open_high=True)


def text(key: str, value: Any) -> None:
    """A non-empty string."""
    if not (isinstance(value, str) and value):
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")


def existing_file(key: str, value: Any) -> None:
    """The path of a file that exists (``~`` expanded)."""
    if not isinstance(value, str) or not Path(value).expanduser().is_file():
        raise ValueError(f"{key}: no such file '{value}'")


def column(key: str, value: Any) -> None:
    """A column name: a string, or a number for a column named by digits."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{key} must be a column name, got {value!r}")


def separator(key: str, value: Any) -> None:
    """One character other than a quote or line break, ``\\t`` (a tab), or null (detect it)."""
    if value is not None and not (
        isinstance(value, str) and (len(value) == 1 or value == "\\t") and value not in '"\r\n'
    ):
        raise ValueError(
            f"{key} must be one character, e.g. ',' ';' '|' or '\\t' (tab), "
            f"or null to detect it, got {value!r}"
        )


def registered(key: str, value: Any) -> None:
    """The name of a regularizer class in ``REGULARIZERS`` now (a class registered after
    this module was imported counts: docs/regularizers.md)."""
    check_choice(key, value, tuple(sorted(REGULARIZERS)))


typed(registered, str)


def device(key: str, value: Any) -> None:
    """``cpu``, ``cuda`` (when a CUDA device is available) or ``auto``."""
    check_choice(key, value, DEVICES)
    resolve_device(value)


@dataclass(frozen=True)
class Param:
    """One config key: what it allows, whether a config may leave it out (the code then
    reads the default that the YAML file states), and for a key of one group choice only,
    ``(group key, choices)``: ``("optimizer.name", ("sgd",))``."""

    check: Check
    optional: bool = False
    when: tuple[str, tuple[str, ...]] | None = None

    @property
    def kind(self) -> Any:
        """The type of the key's field in its Hydra schema (:func:`typed`; ``Any``)."""
        return getattr(self.check, "kind", Any)


# The hidden sizes of any model: a conv net's head may have none (rule mlp_hidden).
hidden_sizes = typed(lambda key, v: sizes(key, v, empty=True), list[int])
ADAM = ("optimizer.name", ("adam", "adamw"))
SGD = ("optimizer.name", ("sgd",))
CSV = ("dataset.name", ("csv",))
IMAGES = ("dataset.name", tuple(IMAGE_SETS))
CNN = ("model.name", ("cnn",))
# A group key a config may leave out, and the choice that then applies.
CHOICE_DEFAULTS = {"model.name": "mlp"}
TENSORBOARD = ("logger.name", ("tensorboard",))
MLFLOW = ("logger.name", ("mlflow",))

# Every key that code reads (conf/<group>/<choice>.yaml holds the defaults). The regularizer's
# own options (l1_ratio, p, groups, params, ...) are the arguments of its class
# (regexp.core.regularizers), checked by the class: see the rule ``regularizer_options``.
PARAMETERS: dict[str, Param] = {
    "lambda": Param(real(0.0)),
    "threshold": Param(real(0.0)),
    "seed": Param(integer(0, SEED_LIMIT)),
    "figures": Param(options(FIGURES), optional=True),
    "resume": Param(boolean, optional=True),
    "compress": Param(boolean, optional=True),
    # how a sweep's best.csv chooses λ (regexp.hydra_app.report, regexp.results.selection)
    "selection.rule": Param(check_rule, optional=True),
    "selection.sparsity": Param(options(SELECTION_SPARSITY), optional=True),
    "dataset.name": Param(options(tuple(LOADERS))),
    "dataset.task": Param(options(TASKS)),
    "dataset.val_size": Param(real(0.0, 1.0, open_low=True, open_high=True), optional=True),
    "dataset.test_size": Param(real(0.0, 1.0, open_low=True, open_high=True), optional=True),
    "dataset.split_seed": Param(integer(0, SEED_LIMIT), optional=True),
    "dataset.scaler": Param(options(SCALERS), optional=True),
    "dataset.path": Param(existing_file, when=CSV),
    "dataset.target": Param(column, when=CSV),
    "dataset.encode_categorical": Param(boolean, optional=True, when=CSV),
    "dataset.sep": Param(separator, optional=True, when=CSV),
    "dataset.root": Param(folder_path, optional=True, when=IMAGES),
    "dataset.download": Param(boolean, optional=True, when=IMAGES),
    "model.name": Param(options(MODELS), optional=True),
    "model.hidden": Param(hidden_sizes),
    "model.channels": Param(sizes, when=CNN),
    "model.kernel_size": Param(odd_size, when=CNN),
    "model.pool": Param(integer(1), when=CNN),
    "model.activation": Param(options(tuple(ACTIVATIONS))),
    "model.dropout": Param(real(0.0, 1.0, open_high=True)),
    "model.init": Param(options(INITS), optional=True),
    "regularizer.name": Param(registered),
    "regularizer.mode": Param(options(MODES), optional=True),
    "regularizer.prox_metric": Param(options(PROX_METRICS), optional=True),
    "optimizer.name": Param(options(OPTIMIZERS)),
    "optimizer.lr": Param(real(0.0, open_low=True)),
    "optimizer.betas": Param(betas, when=ADAM),
    "optimizer.eps": Param(real(0.0, open_low=True), when=ADAM),
    "optimizer.momentum": Param(real(0.0, 1.0, open_high=True), optional=True, when=SGD),
    "trainer.epochs": Param(integer(1)),
    "trainer.batch_size": Param(integer(1)),
    "trainer.drop_last": Param(boolean, optional=True),
    "trainer.early_stopping_patience": Param(
        nullable(integer(1), "null or an integer >= 1"), optional=True
    ),
    "trainer.device": Param(device),
    "trainer.num_threads": Param(integer(1), optional=True),
    "trainer.engine": Param(options(ENGINES), optional=True),
    "logger.name": Param(options(("csv", "tensorboard", "mlflow"))),
    "logger.save_dir": Param(nullable(text, "null or a folder"), when=TENSORBOARD),
    "logger.tracking_uri": Param(text, when=MLFLOW),
    "logger.experiment_name": Param(text, when=MLFLOW),
    # seconds one request to a tracking server may take (regexp.runs.trackers)
    "logger.timeout": Param(real(0.0, open_low=True), optional=True, when=MLFLOW),
}

# The groups whose keys the table lists in full: any other key in them is refused. (The
# regularizer's keys are its class's arguments: the rule regularizer_options.)
CLOSED_GROUPS = ("dataset", "model", "optimizer", "trainer", "logger", "selection")
# Groups a config may leave out: a config without ``logger`` is ``logger=csv``.
OPTIONAL_GROUPS = ("logger",)


def _get(cfg: Mapping, key: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _has(cfg: Mapping, key: str) -> bool:
    missing = object()
    return _get(cfg, key, missing) is not missing


def applies(cfg: Mapping, key: str) -> bool:
    """Whether table key ``key`` belongs to ``cfg``'s choices (and its group is there)."""
    if key.split(".")[0] in OPTIONAL_GROUPS and key.split(".")[0] not in cfg:
        return False
    when = PARAMETERS[key].when
    return when is None or _get(cfg, when[0], CHOICE_DEFAULTS.get(when[0])) in when[1]


def group_keys(cfg: Mapping, group: str) -> list[str]:
    """The keys that group ``group`` may hold for ``cfg``'s choice of it, in table order."""
    prefix = f"{group}."
    return [k[len(prefix) :] for k in PARAMETERS if k.startswith(prefix) and applies(cfg, k)]


# --- the schemas of the YAML files, for Hydra's ConfigStore --------------------------------

# Where the schemas live in Hydra's ConfigStore: schema/run (the top level),
# schema/trainer, and schema/<group>/<choice> for a group with a name key (schema/optimizer/sgd).
SCHEMA_GROUP = "schema"


def schema_choices(group: str) -> tuple[str, ...]:
    """The choices of ``group`` that have a schema: those that its ``name`` key allows
    (``()`` for a group without one, whose one schema is ``schema/<group>``)."""
    param = PARAMETERS.get(f"{group}.name")
    return tuple(getattr(param.check, "choices", ())) if param is not None else ()


def _node(kind: Any) -> Any:
    """A missing (``???``) OmegaConf value node of type ``kind``: ``float``, ``int``,
    ``str``, one of them ``| None``, ``list[int]``, or ``Any``."""
    optional = type(None) in typing.get_args(kind)
    if optional:
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    if typing.get_origin(kind) is list:
        return ListConfig(MISSING, element_type=typing.get_args(kind)[0], is_optional=optional)
    nodes = {float: FloatNode, int: IntegerNode, str: StringNode}
    if kind not in nodes:
        return AnyNode(MISSING)
    return nodes[kind](MISSING, is_optional=optional)


def schema(group: str | None = None, choice: str | None = None) -> DictConfig:
    """The Hydra schema of a config file, derived from :data:`PARAMETERS`: a config (in
    struct mode for a group) with one node per key that the file may hold, typed by the key's check
    (:attr:`Param.kind`) and missing (``???``: the YAML file states the default; a key it
    leaves out stays ``???``, which :func:`validate` reports). Not a dataclass: ``lambda``
    is a Python keyword.

    ``group=None``: the top level (:data:`TOP_LEVEL_KEYS`, and each group as ``Any``);
    otherwise the keys of ``group`` for ``choice`` (:func:`group_keys`). Hydra merges the
    file onto it, so that a value of the wrong type or a key the table does not list for
    that choice is refused while the config is composed (:func:`composition_error` words
    that error as :func:`validate` would).
    """
    if group is None:
        keys = [*TOP_LEVEL_KEYS, *GROUPS]
        kinds = {k: PARAMETERS[k].kind if k in PARAMETERS else Any for k in keys}
    else:
        cfg = {group: {"name": choice} if choice is not None else {}}
        kinds = {k: PARAMETERS[f"{group}.{k}"].kind for k in group_keys(cfg, group)}
    node = OmegaConf.create({k: _node(kind) for k, kind in kinds.items()})
    # A group's keys are closed; the top level also holds Hydra's node (hydra.callbacks,
    # ...), which would not merge into a closed config: check_keys refuses its unknown keys.
    OmegaConf.set_struct(node, group is not None)
    return node


def schema_paths() -> dict[str, DictConfig]:
    """Every schema by its ConfigStore path (``schema/optimizer/sgd``): :func:`schema` of
    the top level, of each closed group and of each of its choices."""
    out = {f"{SCHEMA_GROUP}/run": schema()}
    for group in CLOSED_GROUPS:
        choices = schema_choices(group)
        if not choices:
            out[f"{SCHEMA_GROUP}/{group}"] = schema(group)
        for choice in choices:
            out[f"{SCHEMA_GROUP}/{group}/{choice}"] = schema(group, choice)
    return out


def register_schemas() -> None:
    """Store :func:`schema_paths` in Hydra's ConfigStore, where the shipped YAML files name
    them first in their defaults lists (``- /schema/optimizer/sgd@_here_``). The config
    package (``regexp.conf``) calls it when it is imported, which Hydra does before it
    reads a file of it."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path, node in schema_paths().items():
        group, _, name = path.rpartition("/")
        store.store(group=group, name=name, node=node)


def composition_error(err: BaseException) -> ValueError | None:
    """Hydra's error for a value or key that a schema refuses, as one line.

    Hydra answers ``seed=abc`` with ``Error merging override seed=abc``, caused by
    OmegaConf's ``ValidationError`` (``Value 'abc' of type 'str' could not be converted to
    Integer``, over several lines). Here the override is parsed again and its value checked
    by its key's :data:`PARAMETERS` entry, whose message is returned, as :func:`validate`
    would word it: ``seed must be an integer in [0, 2**32), got 'abc'``. A value in a
    config file that its schema refuses (``In 'trainer/mine': ValidationError raised while
    composing config``) gets the same line with `` (in 'trainer/mine')``; a key the schema
    does not have, one line naming it and the schema's keys. ``None`` for any other error.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf.errors import ConfigKeyError, ValidationError

    cause = err.__cause__ or err.__context__
    if not isinstance(cause, ValidationError | ConfigKeyError):
        return None
    text = str(err).strip()
    reason = str(cause.msg or cause).strip().splitlines()[0]
    key, value, where = str(cause.full_key), cause.value, ""
    merging = re.match(r"Error merging override (.+)", text)
    if merging is not None:  # the whole value of the override (a list, not its element)
        (override,) = OverridesParser.create().parse_overrides([merging.group(1)])
        key, value = override.key_or_group.lstrip("+~"), override.value()
    elif (quoted := re.match(r"(?:In )?'([^']+)'", text)) is not None:
        where = f" (in '{quoted.group(1)}')"
    if isinstance(cause, ConfigKeyError):  # the keys of the node that refused it
        group = key.rpartition(".")[0]
        known = [f"{group}.{k}" if group else str(k) for k in (cause.parent_node or ())]
        return ValueError(
            f"{key} is not a key of its schema{where}; its keys are: {', '.join(known)}"
        )
    if key in PARAMETERS:
        try:
            PARAMETERS[key].check(key, value)
        except ValueError as bad:
            return ValueError(f"{bad}{where}")
    return ValueError(f"{key}: {reason}{where}")


# --- cross-key rules --------------------------------------------------------------------


def mlp_hidden(cfg: Mapping) -> None:
    """An MLP has at least one hidden layer (a conv net's head may have none)."""
    if _get(cfg, "model.name", "mlp") == "mlp":
        sizes("model.hidden", cfg["model"]["hidden"])


def split_sizes(cfg: Mapping) -> None:
    """Validation and test splits leave rows for training."""
    total = _get(cfg, "dataset.val_size", 0.2) + _get(cfg, "dataset.test_size", 0.2)
    if total >= 1:
        raise ValueError(f"dataset.val_size + dataset.test_size must be < 1, got {total:g}")


def builtin_task(cfg: Mapping) -> None:
    """A built-in data set has its own task; only ``dataset=csv`` takes one."""
    name, fixed = cfg["dataset"]["name"], BUILTIN_TASKS.get(cfg["dataset"]["name"])
    if fixed is not None and cfg["dataset"]["task"] != fixed:
        raise ValueError(
            f"dataset.task is fixed to {fixed} for dataset={name}; only dataset=csv takes a task"
        )


def regularizer_options(cfg: Mapping) -> None:
    """The regularizer's options are the arguments of its class, which checks them (at
    ``lambda``); proximal mode needs a proximal step, which the class says it has
    (``Regularizer.proximal_error``)."""
    reg = cfg["regularizer"]
    name, mode = reg["name"], reg.get("mode", "penalty")
    options = {k: v for k, v in reg.items() if k not in ("name", "mode", "prox_metric")}
    known = set(inspect.signature(REGULARIZERS[name]).parameters) - {"strength"}
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(f"regularizer.{k}" for k in sorted(known))
        raise ValueError(
            f"regularizer.{unknown[0]} is not an option of regularizer={name}; "
            + (f"its options are: {allowed}" if allowed else "it takes none")
        )
    try:
        reg = make_regularizer(name, strength=cfg["lambda"], **options)
    except ValueError as err:
        raise ValueError(f"regularizer.{err}") from None
    why = reg.proximal_error() if mode == "proximal" else None  # the class says
    if why is not None:
        raise ValueError(
            f"regularizer.mode=proximal is not defined for regularizer={name}: {why}; "
            "use regularizer.mode=penalty"
        )


def adaptive_metric(cfg: Mapping) -> None:
    """``prox_metric=adaptive`` is Adam's metric: it needs adam or adamw
    (:func:`regexp.train.build.resolve_prox_metric` states the rule)."""
    resolve_prox_metric(cfg["regularizer"], cfg["optimizer"]["name"])


def tracker_installed(cfg: Mapping) -> None:
    """The tracker's packages are installed, so that a run fails here rather than after
    training; its optional extra (``.[<name>]``) installs them."""
    logger = cfg.get("logger")
    for package in logger_packages(logger) if logger else ():
        if importlib.util.find_spec(package) is None:
            name = logger["name"]
            raise ValueError(
                f'logger={name} needs the {package} package: pip install -e ".[{name}]"'
            )


RULES: tuple[Callable[[Mapping], None], ...] = (
    mlp_hidden,
    split_sizes,
    builtin_task,
    regularizer_options,
    adaptive_metric,
    tracker_installed,
)


def logger_packages(logger: Mapping) -> tuple[str, ...]:
    """The packages a tracker imports; its optional extra (``.[<name>]``) installs them."""
    if logger["name"] == "tensorboard":
        return ("tensorboard",)
    if logger["name"] == "mlflow":  # mlflow-skinny leaves out the SQL store's packages
        sql = str(logger["tracking_uri"]).startswith("sqlite:")
        return ("mlflow", "sqlalchemy", "alembic") if sql else ("mlflow",)
    return ()


def _unknown_key(cfg: Mapping, group: str) -> None:
    node, known = cfg[group], group_keys(cfg, group)
    if not isinstance(node, Mapping):  # e.g. selection=best for selection.rule=best
        keys = ", ".join(f"{group}.{k}" for k in known)
        raise ValueError(f"{group} holds the keys {keys}; set one of them, got {group}={node!r}")
    unknown = sorted(str(k) for k in node if k not in known)
    if not unknown:
        return
    where = f"{group}={node['name']}" if "name" in node else group
    if group == "logger":  # a tracker's keys are its options
        takes = ", ".join(k for k in known if k != "name") or "none"
        raise ValueError(f"logger.{unknown[0]} is not an option of {where}; it takes {takes}")
    raise ValueError(
        f"{group}.{unknown[0]} is not a key of {where}; its keys are: "
        + ", ".join(f"{group}.{k}" for k in known)
    )


def validate(cfg: Mapping) -> None:
    """Check a resolved run config against :data:`PARAMETERS` and :data:`RULES`; raise
    ``ValueError`` naming the first bad value.

    Parameters
    ----------
    cfg : Mapping
        The composed config: top-level ``lambda``, ``seed``, ``threshold``, ``resume``,
        ``figures`` and the groups ``dataset``, ``model``, ``regularizer``, ``optimizer``,
        ``trainer`` and ``logger`` (optional).

    Order: values Hydra left missing (``???``), then each key of the table in its order
    (its type, range or choices), then unknown keys, then the rules across keys.
    """
    check_keys(cfg)
    missing = sorted(OmegaConf.missing_keys(OmegaConf.create(dict(cfg))))
    if missing:
        raise ValueError(
            f"missing required value{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
            f"set {'them' if len(missing) > 1 else 'it'} on the command line, "
            f"e.g. {missing[0]}=..."
        )
    for key, param in PARAMETERS.items():
        if not applies(cfg, key):
            continue
        if not _has(cfg, key):
            if param.optional:
                continue
            raise ValueError(f"{key} is missing; set it, e.g. on the command line {key}=...")
        param.check(key, _get(cfg, key))
    for group in CLOSED_GROUPS:
        if group in cfg:
            _unknown_key(cfg, group)
    for rule in RULES:
        rule(cfg)


def validate_group(cfg: Mapping, group: str) -> None:
    """What :func:`validate` checks of one group of ``cfg`` (its keys' values, then keys it
    does not hold), for a sweep-level group checked once before any job runs
    (``selection``: :class:`regexp.hydra_app.lifecycle.SweepLifecycle`)."""
    for key, param in PARAMETERS.items():
        if key.startswith(f"{group}.") and applies(cfg, key) and _has(cfg, key):
            param.check(key, _get(cfg, key))
    if group in cfg:
        _unknown_key(cfg, group)


# The configs this process validated (their JSON): a run's entry points share the check.
_validated: set[str] = set()


def validate_once(cfg: Mapping) -> None:
    """:func:`validate`, unless this process has validated an equal config already.

    A run can pass several entry points: ``regexp train`` validates a single run before
    its run directory exists (:class:`regexp.hydra_app.lifecycle.SweepLifecycle`) and then
    reaches the task; a job of ``hydra/launcher=batched`` is validated by the launcher's
    plan and, when it runs alone, reaches the task too. Each calls this, so that the check
    runs once per run; a config that differs in any value is validated anew.
    """
    key = json.dumps(cfg, sort_keys=True, default=repr)
    if key not in _validated:
        validate(cfg)
        _validated.add(key)
