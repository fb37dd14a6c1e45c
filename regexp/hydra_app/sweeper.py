"""A sweep's job configs composed once per shape of job, and the sweeper that uses them.

Hydra builds job ``k``'s config with ``config_loader.load_sweep_config(master, overrides)``:
it composes the defaults list, whose group choices (``regularizer=l1``,
``experiment=digits_sweep``) pick the config files, applies the value overrides
(``lambda=1e-3``, ``dataset.split_seed=${seed}``) to the composed config
(``ConfigLoaderImpl._apply_overrides_to_config``) and records the overrides in the hydra
node (``hydra.overrides.task``, ``hydra.job.override_dirname``). Composing takes about
0.1 s, and Hydra does it twice per job: once when the sweeper validates the batch and once
when the launcher loads the job.

:class:`ConfigCache` composes each distinct list of group choices (a job's *shape*) once,
with Hydra's own loader, and derives each job's config from a copy of it with Hydra's own
functions: the value overrides through ``_apply_overrides_to_config``, in their order,
then ``hydra.overrides.task`` and ``hydra.job.override_dirname`` as
``ConfigLoaderImpl._load_configuration_impl`` fills them. Everything else in the config
(the choices, ``hydra.runtime``) depends on the group choices only. A job it cannot
derive this way gets Hydra's full load: overrides of ``hydra`` keys, ``+``/``++``/``~``
overrides, ``group@package`` choices, sweeps, and any override that fails (so Hydra
raises its own error message).

:class:`RegexpSweeper` is Hydra's ``BasicSweeper`` whose batch validation goes through the
cache. ``hydra/sweeper=regexp`` (``conf/hydra/sweeper/regexp.yaml``; the default, through
``hparams_search=grid``) selects it through the thin plugin module
``hydra_plugins/regexp_launcher/regexp_sweeper.py``.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


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
        self.repo = None  # Hydra's config repository, with the sweep's search path
        if isinstance(loader, ConfigLoaderImpl):
            try:
                hydra_overrides = list(master.hydra.overrides.hydra)
                _, self.repo = loader._parse_overrides_and_create_caching_repo(
                    master.hydra.job.config_name, hydra_overrides
                )
            except Exception as err:  # Hydra's internals changed: load every job in full
                log.debug("config cache off: %s: %s", type(err).__name__, err)
        self.composed = 0  # how many compositions this cache ran (for tests and logs)

    def _full(self, overrides: Sequence[str]) -> DictConfig:
        self.composed += 1
        return self.loader.load_sweep_config(self.master, list(overrides))

    def _split(self, overrides: Sequence[str]) -> tuple[list[Override], list[Override]] | None:
        """``(group choices, value overrides)`` as Hydra tells them apart, or ``None`` when
        a job needs the full load."""
        if self.repo is None:
            return None
        try:
            parsed = self.parser.parse_overrides(list(overrides))
        except Exception:
            return None  # Hydra's load raises its own message
        groups, values = [], []
        for o in parsed:
            plain = not (o.is_add() or o.is_force_add() or o.is_delete())
            if o.is_hydra_override() or o.is_sweep_override() or not plain or o.package:
                return None
            # Hydra's rule (hydra._internal.defaults_list.Overrides): a key that names a
            # config group is a choice, unless its value is a dict.
            if self.repo.group_exists(o.key_or_group) and not isinstance(o.value(), dict):
                groups.append(o)
            else:
                values.append(o)
        return groups, values

    def load(self, overrides: Sequence[str]) -> DictConfig:
        """Job ``overrides``' config, as ``load_sweep_config(master, overrides)`` gives it."""
        split = self._split(overrides)
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
        cfg = copy.deepcopy(base)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        # As _load_configuration_impl: every non-hydra override, in order, is a task
        # override (a job's overrides here are all non-hydra) ...
        task = cfg.hydra.overrides.task
        task.clear()
        for line in overrides:
            task.append(line)
        # ... and the override dirname is built from them all.
        parsed = self.parser.parse_overrides(list(overrides))
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
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


class RegexpSweeper(BasicSweeper):
    """Hydra's basic sweeper (``hydra/sweeper=basic``: the same jobs, batches, order and
    error messages) that validates a batch by composing each shape of job once."""

    def __init__(self, max_batch_size: int | None = None, params: dict | None = None) -> None:
        # BasicSweeper.__init__'s body. It calls super(BasicSweeper, self), which fails
        # once Hydra's plugin scan has executed basic_sweeper's module again (which makes
        # a new BasicSweeper class) after this class was defined.
        Sweeper.__init__(self)
        self.overrides = None
        self.batch_index = 0
        self.max_batch_size = max_batch_size
        self.params = {} if params is None else params
        self.hydra_context = None
        self.config = None
        self.launcher = None

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        for overrides in batch:
            job_config(loader, self.config, list(overrides))
