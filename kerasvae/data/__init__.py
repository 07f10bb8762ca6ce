"""kerasvae.data."""
