"""simple_ops: one user extraction built twice, as assets and as ops in a job.

Both styles call the same steps in :mod:`simple_ops.extraction`, so what differs
between them in the UI is the orchestration alone.
"""
