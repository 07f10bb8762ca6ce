"""kerasvae.steps."""
