"""`python -m keras_attn.cli ARGS`: the same as the `keras-attn` console script."""

import sys

from keras_attn.cli.main import main

sys.exit(main())
