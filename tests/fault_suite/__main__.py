"""`python -m tests.fault_suite` or `python tests/fault_suite`: see the package docstring."""
import sys

if __package__:
    from . import main
else:   # run as a folder: import the package by its folder's name
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fault_suite import main

sys.exit(main())
