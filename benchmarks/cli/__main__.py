"""``python -m benchmarks.cli``: the ``archbench`` command."""

from benchmarks.cli.main import main

raise SystemExit(main())
