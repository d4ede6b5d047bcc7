"""solargen: generative augmentation studio for solar-flare forecasting."""
__version__ = "0.1.0"
