"""`python -m plano_trio` is the same as the `plano-trio` command."""

import sys

from plano_trio.cli import main

sys.exit(main())
