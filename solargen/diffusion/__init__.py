"""Conditional diffusion: conditioning, pipeline, training, sampling."""
