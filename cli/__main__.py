"""``python -m nlmmap``: the same CLI as the ``nlmmap`` command."""

import sys

from .cli import main

sys.exit(main())
