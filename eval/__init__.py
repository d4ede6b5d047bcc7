"""Generative evaluation: FID, cluster metrics, classifier fidelity, std maps, novelty."""
