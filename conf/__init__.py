"""The shipped config files. Each names its schema first in its defaults list
(``- /schema/optimizer/adam@_here_``); Hydra imports this package before it reads a file
of it, so the schemas (derived from :data:`regexp.config.PARAMETERS`) are in Hydra's
ConfigStore by then."""

from regexp.config import register_schemas

register_schemas()
