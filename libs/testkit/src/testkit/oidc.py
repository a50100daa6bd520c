"""A real OpenID Connect provider for the tests: ``oidc-provider-mock`` as a process.

Its login form takes a subject (``sub``); the claims a subject gets (groups, names) are set
through its API with :meth:`IdentityProvider.set_user`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

import requests

from testkit.auth import wait_until


@dataclass
class IdentityProvider:
    process: subprocess.Popen[bytes]
    url: str

    def set_user(self, sub: str, **claims: object) -> None:
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def run_provider(port: int, host: str = "127.0.0.1") -> IdentityProvider:
    """The provider at ``http://host:port``, once it answers its discovery document."""
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", host, "--port", str(port), "--require-nonce"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    provider = IdentityProvider(process, f"http://{host}:{port}")

    def ready() -> bool:
        assert process.poll() is None, "the OpenID provider exited"
        try:
            return requests.get(f"{provider.url}/.well-known/openid-configuration", timeout=1).ok
        except requests.ConnectionError:
            return False

    wait_until(ready, 20, "the OpenID provider")
    return provider


def docker_host_address() -> str:
    """The host's address on Docker's default bridge: where containers and the host's browser both reach it."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True)
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", shown.stdout)
    if match is None:
        raise RuntimeError(f"no IPv4 address on docker0 ({shown.stderr.strip() or 'no such interface'})")
    return match.group(1)
