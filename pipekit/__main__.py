"""``python -m pipekit ...``: the ``pipekit`` command (the same entry point as the installed script)."""
from pipekit.cli import main

raise SystemExit(main())
