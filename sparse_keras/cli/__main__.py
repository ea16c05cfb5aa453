"""`python -m sparse_keras.cli ...`: the same as the `sparse-keras` command."""

import sys

from sparse_keras.cli import main

sys.exit(main())
