"""`python -m sitn_tools ...` is the same as the `sitn-tf` command."""

import sys

from sitn_tools.cli import main

sys.exit(main())
