"""Tests of the leaderboards (reports/)."""
