"""Hydra's entry to ``hydra/sweeper=regexp``; the sweeper's logic is
:mod:`regexp.hydra_app.sweeper`.

Hydra instantiates only plugin classes defined in the ``hydra_plugins`` namespace package
(and finds them by scanning it), so this module defines the class Hydra sees as a thin
subclass. Its config is ``conf/hydra/sweeper/regexp.yaml``, a file of regexp's config
directory, so that composing regexp's config never depends on this module being found.
"""

from regexp.hydra_app import sweeper

__all__ = ["RegexpSweeper"]


class RegexpSweeper(sweeper.RegexpSweeper):
    """:class:`regexp.hydra_app.sweeper.RegexpSweeper`, where Hydra's plugin discovery looks."""
