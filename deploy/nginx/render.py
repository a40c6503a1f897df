#!/usr/bin/env python3
"""Render Parley's nginx templates into a directory that nginx can run from.

The official nginx image renders ``/etc/nginx/templates/**/*.template`` into
``/etc/nginx/conf.d/`` itself at start. This script does the same for nginx installed
from a distribution package (bare metal, CI, tests), and adds a top-level
``nginx.conf`` that runs unprivileged from the output directory::

    python3 deploy/nginx/render.py /tmp/parley-nginx \\
        --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002 --root-path /chat
    nginx -p /tmp/parley-nginx -c /tmp/parley-nginx/nginx.conf -e stderr \\
        -g "daemon off; pid /tmp/parley-nginx/nginx.pid; error_log stderr;"

Values come from the defaults below, then from ``PARLEY_*`` environment variables of
the same names, then from the command line. Unlike ``envsubst``, a placeholder without
a value is an error, not a silently kept ``${...}``. Python standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
TOP_LEVEL_CONF = HERE / "nginx.conf"
SUFFIX = ".template"

#: The name of the upstream group written when more than one --upstream is given.
UPSTREAM_GROUP = "parley_backends"

#: Defaults for a loopback setup; compose sets its own values (deploy/compose.yaml).
DEFAULTS: dict[str, str] = {
    "PARLEY_UPSTREAM": "127.0.0.1:8000",
    "PARLEY_ROOT_PATH": "",
    "PARLEY_NGINX_SITE": "http",
    "PARLEY_NGINX_LISTEN": "127.0.0.1:8080",
    "PARLEY_NGINX_TLS_LISTEN": "127.0.0.1:8443",
    "PARLEY_NGINX_SERVER_NAME": "_",
    "PARLEY_NGINX_RESOLVER": "127.0.0.1",
    "PARLEY_NGINX_CORS_ORIGIN": "",
    "PARLEY_NGINX_FLOWER_UPSTREAM": "127.0.0.1:5555",
    "PARLEY_NGINX_HOOKS_UPSTREAM": "127.0.0.1:8001",
    "PARLEY_NGINX_TLS_CERT_DIR": "/etc/letsencrypt/live/localhost",
}

_PLACEHOLDER = re.compile(r"\$\{(PARLEY_[A-Z0-9_]+)\}|\$(PARLEY_[A-Z0-9_]+)")
_ROOT_PATH = re.compile(r"^(/[A-Za-z0-9_-]+)*$")
_ADDRESS = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")


class RenderError(ValueError):
    """A value or a template that cannot make a valid configuration."""


def validate(values: Mapping[str, str]) -> None:
    """Refuse values that would produce a broken or surprising configuration."""
    root = values["PARLEY_ROOT_PATH"]
    if not _ROOT_PATH.match(root):
        raise RenderError(
            f"PARLEY_ROOT_PATH={root!r}: use '' or segments of [A-Za-z0-9_-] such as "
            "'/chat', with a leading and without a trailing slash"
        )
    if values["PARLEY_NGINX_SITE"] not in {"http", "https"}:
        raise RenderError("PARLEY_NGINX_SITE must be 'http' or 'https'")
    for name in (
        "PARLEY_UPSTREAM",
        "PARLEY_NGINX_FLOWER_UPSTREAM",
        "PARLEY_NGINX_HOOKS_UPSTREAM",
        "PARLEY_NGINX_RESOLVER",
    ):
        if not _ADDRESS.match(values[name]):
            raise RenderError(f"{name}={values[name]!r} is not a host, host:port or group name")
    origin = values["PARLEY_NGINX_CORS_ORIGIN"]
    if origin and not re.match(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?$", origin):
        raise RenderError(
            f"PARLEY_NGINX_CORS_ORIGIN={origin!r} is not an origin (scheme://host[:port])"
        )


def substitute(text: str, values: Mapping[str, str], source: str = "<template>") -> str:
    """Replace ``${PARLEY_X}`` and ``$PARLEY_X`` as the image's envsubst does, strictly."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise RenderError(f"{source}: no value for placeholder {name}")
        return values[name]

    return _PLACEHOLDER.sub(replace, text)


def render(
    out_dir: Path,
    values: Mapping[str, str],
    upstreams: Sequence[str] = (),
    templates: Path = TEMPLATES,
) -> Path:
    """Write ``nginx.conf`` and ``conf.d/`` into ``out_dir``; return the nginx.conf path.

    With two or more ``upstreams``, an ``upstream parley_backends`` block is written
    and PARLEY_UPSTREAM points at it; with one, PARLEY_UPSTREAM is that address.
    """
    merged = dict(values)
    if len(upstreams) == 1:
        merged["PARLEY_UPSTREAM"] = upstreams[0]
    elif upstreams:
        merged["PARLEY_UPSTREAM"] = UPSTREAM_GROUP
    validate(merged)

    conf_d = out_dir / "conf.d"
    if conf_d.exists():
        shutil.rmtree(conf_d)
    conf_d.mkdir(parents=True)
    for template in sorted(templates.rglob(f"*{SUFFIX}")):
        target = conf_d / template.relative_to(templates).with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(substitute(template.read_text(), merged, str(template)))

    if len(upstreams) > 1:
        for address in upstreams:
            if not _ADDRESS.match(address):
                raise RenderError(f"--upstream {address!r} is not host:port")
        servers = "".join(
            f"    server {address} max_fails=1 fail_timeout=5s;\n" for address in upstreams
        )
        (conf_d / "parley-upstreams.conf").write_text(
            f"# Written by render.py: the app processes behind PARLEY_UPSTREAM.\n"
            f"upstream {UPSTREAM_GROUP} {{\n{servers}    keepalive 16;\n}}\n"
        )

    conf = out_dir / "nginx.conf"
    shutil.copyfile(TOP_LEVEL_CONF, conf)
    return conf


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="directory to write nginx.conf and conf.d/ into")
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="an app process; repeat for several (then an upstream group is written)",
    )
    parser.add_argument("--root-path", help="PARLEY_ROOT_PATH, e.g. /chat")
    parser.add_argument("--listen", help="PARLEY_NGINX_LISTEN, e.g. 127.0.0.1:8080")
    parser.add_argument("--site", choices=["http", "https"], help="PARLEY_NGINX_SITE")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other placeholder, e.g. --set PARLEY_NGINX_CORS_ORIGIN=https://app.example",
    )
    args = parser.parse_args(argv)

    values = dict(DEFAULTS)
    values.update({name: os.environ[name] for name in DEFAULTS if name in os.environ})
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("PARLEY_"):
            parser.error(f"--set {item!r}: expected PARLEY_NAME=VALUE")
        values[name] = value
    for name, value in (
        ("PARLEY_ROOT_PATH", args.root_path),
        ("PARLEY_NGINX_LISTEN", args.listen),
        ("PARLEY_NGINX_SITE", args.site),
    ):
        if value is not None:
            values[name] = value

    try:
        conf = render(args.out_dir.resolve(), values, args.upstream)
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    print(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
