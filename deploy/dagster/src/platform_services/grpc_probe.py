"""Is a Dagster gRPC code server up, and did its code load? One probe, for two callers.

Each code server's watchdog (platform_services.watchdog, through .healthcheck) runs it
every few seconds for the container's health verdict, and the metrics service
(platform_services.metrics) against every location of workspace.yaml. Imports only json at
module level and grpc when called: no Dagster import (~0.1 s in a new process, ~2 ms
per call in one that already imported grpc).

`dagster api grpc-health-check` alone is not enough: a server whose code failed to
import still reports SERVING (with ``--lazy-load-user-code``); the error only shows
in its ListRepositories reply.
"""

from __future__ import annotations

import json
import os
import sys

DEFAULT_TIMEOUT_SECONDS = 4.0
#: Docker keeps 4 KiB of a health check's output; the error's first line says what failed.
MAX_ERROR_CHARS = 500


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
        return f"the code location failed to load: {_load_error(reply)}"
    return None


def _load_error(reply: bytes) -> str:
    """The first line of the load error in a ListRepositories reply, or where to find it.

    The reply is one protobuf string field (tag, varint length, JSON): decoded by hand, so
    that nothing but grpc is imported.
    """
    try:
        length, shift, index = 0, 0, 1
        while True:
            byte = reply[index]
            index += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        message = json.loads(reply[index : index + length])["message"]
        first_line = str(message).strip().splitlines()[0]
    except (IndexError, KeyError, TypeError, ValueError):
        return "see the container's log or the UI"
    return first_line if len(first_line) <= MAX_ERROR_CHARS else first_line[: MAX_ERROR_CHARS - 3] + "..."


def shutdown_server(port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
    """Ask the server to drain: it stops accepting calls at once, lets the ones in flight finish
    (Dagster's DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD), then exits. `make deploy` retires a release so:
    a client that still resolves its address is refused and connects to the new release instead."""
    import grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        shutdown = channel.unary_unary(
            "/api.DagsterApi/ShutdownServer", request_serializer=lambda _: b"", response_deserializer=lambda raw: raw
        )
        shutdown(None, timeout=timeout)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("check", "shutdown"):
        print("usage: python -m platform_services.grpc_probe check|shutdown [PORT]", file=sys.stderr)
        return 2
    port = int(argv[2]) if len(argv) > 2 else int(os.environ.get("DAGSTER_GRPC_PORT", "4000"))
    if argv[1] == "shutdown":
        shutdown_server(port)
        return 0
    problem = check_code_server(port)
    print(problem or "ok")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
