"""Code that ships to AWS Lambda. Imports nothing from infra/ or modelrail/.

Each function package ships alone, as a top-level package with its own ``catalog.py`` (here a symlink to
``functions/catalog.py``). Imported from the repository, the three links would load three copies of one module
(and three unequal copies of each metric); they are made that one module, so a metric is the same object
whichever package names it.
"""

import sys

from . import catalog

for _package in ("inference", "acceptance", "monitor"):
    sys.modules.setdefault(f"{__name__}.{_package}.catalog", catalog)
