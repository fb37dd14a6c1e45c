"""A sweep's job configs composed once per shape of job, and the sweeper that uses them.

Hydra builds job ``k``'s config with ``config_loader.load_sweep_config(master, overrides)``:
it composes the defaults list, whose group choices (``regularizer=l1``,
``experiment=digits_sweep``) pick the config files, applies the value overrides
(``lambda=1e-3``, ``dataset.split_seed=${seed}``) to the composed config, which is in
struct mode, with ``OmegaConf.update(cfg, key, value, merge=True)``, and records the
overrides in the hydra node (``hydra.overrides.task``, ``hydra.job.override_dirname``).
Composing takes about 0.1 s, and Hydra does it twice per job: once when the sweeper
validates the batch and once when the launcher loads the job.

:class:`ConfigCache` composes each distinct list of group choices (a job's *shape*) once,
with Hydra's own loader, and derives each job's config from a copy of it through public
APIs only: Hydra's ``OverridesParser`` reads the overrides, the loader's
``get_group_options`` tells a group choice from a value override (Hydra's rule: a key that
names a config group is a choice, unless its value is a dict), ``OmegaConf.update`` applies
the value overrides in their order, and ``hydra.overrides.task`` and
``hydra.job.override_dirname`` are filled as Hydra's documentation of ``override_dirname``
says (:func:`override_dirname`). Everything else in the config (the choices,
``hydra.runtime``) depends on the group choices only. A job it cannot derive this way gets
Hydra's full load: overrides of ``hydra`` keys, ``+``/``++``/``~`` overrides,
``group@package`` choices, sweeps, and any override that fails (so Hydra raises its own
error message). ``tests/test_config_cache.py`` checks the derived configs against Hydra's
full load node for node.

:class:`RegexpSweeper` is Hydra's basic sweeper (found through Hydra's public plugin
registry, ``Plugins.discover``) whose batch validation goes through the cache.
``hydra/sweeper=regexp`` (``conf/hydra/sweeper/regexp.yaml``; the default, through
``hparams_search=grid``) selects it through the thin plugin module
``hydra_plugins/regexp_launcher/regexp_sweeper.py``. Nothing here imports ``hydra._internal``.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def override_dirname(
    overrides: Sequence[Override], exclude_keys: Sequence[str], item_sep: str, kv_sep: str
) -> str:
    """``hydra.job.override_dirname``: the overrides' input lines whose key is not in
    ``exclude_keys``, sorted, joined with ``item_sep``, every ``=`` replaced by ``kv_sep``
    (Hydra's documentation, "Customizing working directory pattern")."""
    lines = sorted(str(o.input_line) for o in overrides if o.key_or_group not in exclude_keys)
    return re.sub("=", kv_sep, item_sep.join(lines))


class ConfigCache:
    """Job configs of one sweep (one ``master`` config), composed once per shape.

    ``load(overrides)`` returns what ``loader.load_sweep_config(master, overrides)``
    returns: a fresh config, equal node for node (values, interpolations, flags and the
    hydra node), that the caller may change.
    """

    def __init__(self, loader: ConfigLoader, master: DictConfig) -> None:
        self.loader, self.master = loader, master
        self.signature = _signature(master)
        self.bases: dict[tuple[str, ...], DictConfig] = {}
        self.parser = OverridesParser.create()
        self.groups: dict[str, bool] = {}  # key → whether it names a config group
        self.composed = 0  # how many compositions this cache ran (for tests and logs)

    def _full(self, overrides: Sequence[str]) -> DictConfig:
        self.composed += 1
        return self.loader.load_sweep_config(self.master, list(overrides))

    def _is_group(self, key: str) -> bool:
        """Whether ``key`` names a config group on the sweep's search path."""
        if key not in self.groups:
            options = self.loader.get_group_options(
                key,
                results_filter=None,  # config files and subgroups
                config_name=self.master.hydra.job.config_name,
                overrides=list(self.master.hydra.overrides.hydra),
            )
            self.groups[key] = bool(options)
        return self.groups[key]

    def _split(self, overrides: Sequence[str]) -> tuple[list[Override], list[Override]] | None:
        """``(group choices, value overrides)`` as Hydra tells them apart, or ``None`` when
        a job needs the full load."""
        try:
            parsed = self.parser.parse_overrides(list(overrides))
        except Exception:
            return None  # Hydra's load raises its own message
        groups, values = [], []
        for o in parsed:
            plain = not (o.is_add() or o.is_force_add() or o.is_delete())
            if o.is_hydra_override() or o.is_sweep_override() or not plain or o.package:
                return None
            if isinstance(o.value(), dict) or not self._is_group(o.key_or_group):
                values.append(o)
            else:
                groups.append(o)
        return groups, values

    def load(self, overrides: Sequence[str]) -> DictConfig:
        """Job ``overrides``' config, as ``load_sweep_config(master, overrides)`` gives it."""
        try:
            split = self._split(overrides)
        except Exception as err:  # the loader could not list a group: load in full
            log.debug("config cache off: %s: %s", type(err).__name__, err)
            split = None
        if split is None:
            return self._full(overrides)
        groups, values = split
        shape = tuple(o.input_line for o in groups)
        base = self.bases.get(shape)
        if base is None:
            try:
                base = self._full(shape)
            except Exception:
                return self._full(overrides)  # raises Hydra's own error for the whole job
            self.bases[shape] = base
        try:
            return self._derive(base, overrides, values)
        except Exception:
            return self._full(overrides)

    def _derive(self, base: DictConfig, overrides: Sequence[str], values: list[Override]):
        cfg = copy.deepcopy(base)  # in struct mode, as Hydra's composed config
        for o in values:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        # Every non-hydra override, in order, is a task override (a job's overrides here
        # are all non-hydra) ...
        task = cfg.hydra.overrides.task
        task.clear()
        for line in overrides:
            task.append(line)
        # ... and the override dirname is built from them all.
        parsed = self.parser.parse_overrides(list(overrides))
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = override_dirname(
            parsed, dirname.exclude_keys, dirname.item_sep, dirname.kv_sep
        )
        OmegaConf.copy_cache(from_config=self.master, to_config=cfg)
        return cfg


def _signature(master: DictConfig) -> tuple:
    """What a composed config depends on besides its overrides: the master config (its
    hydra overrides, search path, job settings), the working directory and the
    environment variables that ``hydra.job.env_copy`` copies."""
    env = tuple(os.environ.get(k) for k in OmegaConf.select(master, "hydra.job.env_copy") or ())
    return OmegaConf.to_yaml(master), os.getcwd(), env


_cache: ConfigCache | None = None


def job_config(loader: ConfigLoader, master: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``loader.load_sweep_config(master, overrides)``, composed once per shape of job.

    One cache per process serves one sweep: the sweeper's validation fills it and the
    launcher's loads reuse it; a worker process that receives a copy of the same master
    config (same :func:`_signature`) keeps its cache from one batch of jobs to the next.
    """
    global _cache
    if _cache is None or _cache.master is not master or _cache.loader is not loader:
        if _cache is not None and _cache.signature == _signature(master):
            _cache.master, _cache.loader = master, loader  # the same sweep, copied
        else:
            _cache = ConfigCache(loader, master)
    return _cache.load(overrides)


def basic_sweeper_class() -> type[Sweeper]:
    """Hydra's basic sweeper (``hydra/sweeper=basic``), from Hydra's plugin registry."""
    for cls in Plugins.instance().discover(Sweeper):
        if cls.__name__ == "BasicSweeper":
            return cls
    raise RuntimeError("Hydra's BasicSweeper plugin was not found")


class RegexpSweeper(Sweeper):
    """Hydra's basic sweeper (``hydra/sweeper=basic``: the same jobs, batches, order and
    error messages) that validates a batch by composing each shape of job once.

    It holds a basic sweeper and hands it ``setup`` and ``sweep``; the basic sweeper's
    batch check, ``validate_batch_is_legal`` (a public method of Hydra's ``Sweeper``), is
    this one's.
    """

    def __init__(self, max_batch_size: int | None = None, params: dict | None = None) -> None:
        self.basic: Any = basic_sweeper_class()(max_batch_size=max_batch_size, params=params)
        self.basic.validate_batch_is_legal = self.validate_batch_is_legal
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.basic.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.hydra_context, self.config = hydra_context, config
        self.launcher = self.basic.launcher

    def sweep(self, arguments: list[str]) -> Any:
        return self.basic.sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        for overrides in batch:
            job_config(loader, self.config, list(overrides))
