"""The analytics team's code location: 13 assets in four layers.

``sources`` (the source API as typed tables) → ``transforms`` (cleaned and
joined) → ``analytics`` (per-user and dataset-wide statistics) → ``exports``
(CSV files and a JSON summary under ``EXPORTS_DIR/modular_assets/``).
:mod:`modular_assets.definitions` assembles them.
"""
