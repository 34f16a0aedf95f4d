"""`python -m f2rvlm.cli ...` runs the `f2rvlm` command."""

import sys

from . import main

sys.exit(main())
