"""Experiments: parallel, restartable sweeps (local process pool or Ray Tune) and their statistics report."""
