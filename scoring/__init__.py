"""Models, training loops, metrics and decision policies."""
