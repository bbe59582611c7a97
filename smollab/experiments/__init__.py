"""Experiments that decide the data: annealing runs, ablation sweeps, RegMix."""
