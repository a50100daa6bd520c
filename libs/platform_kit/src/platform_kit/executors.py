"""``run_executor``: the executor of every code location, in-process unless a run asks otherwise.

Each run already has its own container, so by default its steps share one process
(docs/decisions.md#in-process-executor). A run that wants Dagster's process per step,
e.g. to isolate a step that may crash the interpreter, asks for it in its run config,
from the launchpad, a schedule's ``RunRequest`` or GraphQL::

    execution:
      config:
        multiprocess: {max_concurrent: 4}   # the options of Dagster's multiprocess executor

It is Dagster's own ``multi_or_in_process_executor`` with the default flipped from
``multiprocess`` to ``in_process``; the chosen mode's options are checked against that
executor's schema when the run starts, with an error naming the wrong key.
"""

from __future__ import annotations

import dagster as dg

run_executor = dg.multi_or_in_process_executor.configured(
    lambda config: config,
    name="in_process_or_multiprocess",
    config_schema=dg.Field(
        dg.Selector({"in_process": dg.Permissive(), "multiprocess": dg.Permissive()}),
        default_value={"in_process": {}},
        description="in_process (the default) or multiprocess, with that executor's options.",
    ),
)
