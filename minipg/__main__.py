"""`python -m minipg train | eval | plot`: the same as the `minipg` command."""
import sys

from minipg.tools.cli import main

sys.exit(main())
