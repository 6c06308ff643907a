"""`python -m sitn_tf ...` is the same as the `sitn-tf` command."""

import sys

from sitn_tf.cli import main

sys.exit(main())
