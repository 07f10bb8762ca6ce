"""kerasvae.models."""
