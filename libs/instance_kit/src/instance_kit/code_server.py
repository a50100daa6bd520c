"""Is a Dagster gRPC code server up, and did its code load? One probe, for two callers.

deploy/dagster/healthcheck.py runs it every 2 s in each code server's container
(``code-server``), and the metrics service (instance_kit.metrics) against every
location of workspace.yaml. Imports nothing at module level and only grpc when
called: the health check must stay cheap (no Dagster import, ~0.1 s).

`dagster api grpc-health-check` alone is not enough: a server whose code failed to
import still reports SERVING (with ``--lazy-load-user-code``); the error only shows
in its ListRepositories reply.
"""

from __future__ import annotations

DEFAULT_TIMEOUT_SECONDS = 4.0


def check_code_server(port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str | None:
    """None when the gRPC server at ``host:port`` is SERVING and its code loaded, else the problem.

    ``timeout`` bounds each of the two calls (health check, ListRepositories).
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=timeout
            )
        except grpc.RpcError as exc:
            return f"gRPC health check failed: {exc.code().name}"
        if status.status != health_pb2.HealthCheckResponse.SERVING:
            return f"gRPC server status is {health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)}"
        # ListRepositoriesRequest is an empty message; the reply's only field holds
        # Dagster's serialized response, or a SerializableErrorInfo when loading failed.
        list_repositories = channel.unary_unary(
            "/api.DagsterApi/ListRepositories",
            request_serializer=lambda _: b"",
            response_deserializer=lambda raw: raw,
        )
        try:
            reply: bytes = list_repositories(None, timeout=timeout)
        except grpc.RpcError as exc:
            return f"ListRepositories failed: {exc.code().name}"
    if b"SerializableErrorInfo" in reply:
        return "the code location failed to load: see the container's log or the UI"
    return None
