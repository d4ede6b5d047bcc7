"""The experiments layer: the measured studies built over the libraries below (data, diffusion,
eval, forecasting): the augmentation ablation grid, its runner, statistics and report.

Only the application layer imports this package."""
