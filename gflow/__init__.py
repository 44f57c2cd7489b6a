"""gflow: training of wide two-layer networks as a Wasserstein gradient flow, solved as a PDE."""

__version__ = "0.1.0"
