"""`python -m sitn_tf data ...`: the library's own commands (the converter).

The full `sitn-tf` command is `python -m sitn_tools`.
"""

import sys

from sitn_tf.cli import main

sys.exit(main())
