"""The stack's webserver: Dagster's, with per-team permissions and an audit log (python -m ...webserver).

* :mod:`.context`: the request context, whose permission answers come from the identity's roles;
* :mod:`.app`: the identity check on every request, the audit of every mutation;
* :mod:`.audit`: the audit record, its log line and its rows in Postgres.
"""
