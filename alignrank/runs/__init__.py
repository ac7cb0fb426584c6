"""Keyed runs: run keys, run folders, the one train() path, sweeps on Ray, progress."""
