"""Training: the shared recipe, its optimizer and callbacks, the accelerator, the measurements."""
