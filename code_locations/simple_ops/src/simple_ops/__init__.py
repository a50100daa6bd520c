"""The data-extraction team's code location: one user extraction built twice, as assets and as ops in a job.

Both styles call the same steps in :mod:`simple_ops.extraction`, so what differs
between them in the UI is the orchestration alone. :mod:`simple_ops.definitions`
assembles them.
"""
