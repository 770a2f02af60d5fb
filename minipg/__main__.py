"""`python -m minipg train | eval | plot`: the same as the `minipg` command."""
import sys

from minipg.cli import main

sys.exit(main())
