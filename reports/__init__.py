"""Leaderboards built from run directories; reads files, never imports TensorFlow."""
