"""kerasvae.metrics."""
