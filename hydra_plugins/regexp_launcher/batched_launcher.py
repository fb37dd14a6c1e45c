"""Hydra's entry to ``hydra/launcher=batched``; the launcher's logic is
:mod:`regexp.hydra_app.launcher`.

Hydra instantiates only plugin classes defined in the ``hydra_plugins`` namespace package
(and finds them by scanning it), so this module defines the class Hydra sees as a thin
subclass and registers its config (``hydra.launcher.n_jobs``, ``parallel_from``).
"""

from regexp.hydra_app import launcher
from regexp.hydra_app.launcher import BatchedLauncherConf

__all__ = ["BatchedLauncher", "BatchedLauncherConf"]


class BatchedLauncher(launcher.BatchedLauncher):
    """:class:`regexp.hydra_app.launcher.BatchedLauncher`, where Hydra's plugin discovery looks."""


launcher.store_config()
