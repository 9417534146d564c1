"""Helpers shared by the tests of several rooms."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository's root
