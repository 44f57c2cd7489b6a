"""`python -m gflow ...` is the `gflow` command."""
import sys

from gflow.app.cli import main

sys.exit(main())
