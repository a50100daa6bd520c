"""sample-api: a small JSONPlaceholder-compatible HTTP API with size and fault knobs.

Standard library only. Run it with ``python -m sample_api`` (see ``--help``);
drive it from tests with :func:`testkit.sample_api.running_sample_api`.
"""
