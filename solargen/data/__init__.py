"""Data layer: sources, GOES flux, flare catalogues, label rules, splits, datasets."""
