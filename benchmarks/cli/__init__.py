"""The commands: ``archbench run``, ``models``, ``check``, ``report``, and ``nox -s perf``."""
