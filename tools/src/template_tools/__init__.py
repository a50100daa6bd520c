"""Developer tooling of the Dagster deployment template (never shipped in an image)."""
