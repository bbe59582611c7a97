"""Pretraining: the schedule, the parallel wrapper, checkpoints and the loop that ties them."""
