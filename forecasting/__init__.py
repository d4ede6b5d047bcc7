"""Flare forecasters: tasks, models, losses, metrics, training, evaluation, ablation."""
