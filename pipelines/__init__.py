"""Pipeline definitions (wiring only) and their configs."""
