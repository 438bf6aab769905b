"""Thin command-line programs over the library (``spacetravlr``, ``spacetravlr-perturb``)."""
