"""The platform's own services, each run as ``python -m platform_services.<service>``.

The Dagster images put this package on ``PYTHONPATH`` (``/opt/dagster/lib``, see
``deploy/Dockerfile``): the instance image all of it, the code-location image only what a
code server's watchdog needs. Nothing is imported here, so that a service imports only
what it uses (the watchdog stays at a few MiB).
"""
