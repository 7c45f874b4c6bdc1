"""The training loop's shared parts: run folders, logging, progress, checkpoints, evaluation."""
