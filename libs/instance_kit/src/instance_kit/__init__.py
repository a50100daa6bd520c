"""Classes the deployment's ``dagster.yaml`` loads by module and class name.

Every Dagster image ships this package (``deploy/Dockerfile`` puts it on
``PYTHONPATH``), because every process that reads ``dagster.yaml`` (webserver,
daemon, code servers, run workers) must be able to import what it names.
"""
