"""Tests of the registry and every architecture (models/)."""
