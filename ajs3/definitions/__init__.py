"""Loading and validating unit definitions."""
