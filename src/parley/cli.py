"""`parley serve | hooks | worker | migrate | client`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from parley.db.migrate import upgrade_to_head
    from parley.realtime.router import MAX_CLIENT_FRAME_BYTES
    from parley.settings import get_settings

    settings = get_settings()
    settings.signing_key()  # generate the local secret once, before workers fork
    if settings.auto_migrate:
        upgrade_to_head(settings.database_url)
    uvicorn.run(
        "parley.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # The app reads X-Forwarded-* itself, from PARLEY_TRUSTED_PROXIES only (create_app).
        proxy_headers=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=args.graceful_timeout,
        ws_ping_interval=settings.ws_heartbeat_seconds,
        ws_ping_timeout=settings.ws_heartbeat_seconds,
        ws_per_message_deflate=settings.ws_compression,
        # A bigger client frame closes the socket with 1009 while it is being read.
        ws_max_size=MAX_CLIENT_FRAME_BYTES,
    )
    return 0


def _hooks(args: argparse.Namespace) -> int:
    import uvicorn

    from parley.settings import get_settings

    if not get_settings().services_mode:
        print(
            "parley hooks: needs services mode (PARLEY_REDIS_URL); in embedded mode "
            "`parley serve` serves /hooks itself",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(
        "parley.hooks_app:create_hooks_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,  # the app reads X-Forwarded-* from trusted proxies only
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from parley.db.migrate import upgrade_to_head
    from parley.settings import get_settings

    upgrade_to_head(get_settings().database_url)
    print("database is at the newest migration")
    return 0


def _worker(args: argparse.Namespace) -> int:
    # Before the domains and the app's modules: they import prometheus_client, which must
    # find the worker's metrics directory set (see parley.worker.process).
    from parley.worker.process import check_worker, prepare_metrics, run_worker

    if args.check:
        from parley.tasks import TASKS

        return check_worker(TASKS, name=args.name, timeout=args.timeout)
    prepared = prepare_metrics(args.metrics_port)
    from parley.tasks import TASKS

    return run_worker(
        TASKS,
        prepared,
        concurrency=args.concurrency,
        queues=args.queues,
        name=args.name,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
    )


def _client(args: argparse.Namespace) -> int:
    from parley.client.main import main as client_main

    return client_main(args.client_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `parley` command."""
    parser = argparse.ArgumentParser(prog="parley", description="Parley chat server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP and WebSocket")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=20,
        help="seconds open requests get to finish on shutdown",
    )
    serve.set_defaults(func=_serve)

    hooks = commands.add_parser("hooks", help="serve only the inbound webhooks (/hooks/...)")
    hooks.add_argument("--host", default="127.0.0.1")
    hooks.add_argument("--port", type=int, default=8001)
    hooks.add_argument("--workers", type=int, default=1, help="server processes")
    hooks.add_argument(
        "--graceful-timeout", type=int, default=10, help="seconds open requests get on shutdown"
    )
    hooks.set_defaults(func=_hooks)

    worker = commands.add_parser("worker", help="run a background-job worker")
    worker.add_argument("--concurrency", type=int, default=None)
    worker.add_argument("--queues", default=None, help="comma-separated queue names")
    worker.add_argument(
        "--name", default=None, help="Celery node name (default celery@HOSTNAME; %%h = host)"
    )
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    worker.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    worker.add_argument(
        "--check",
        action="store_true",
        help="do not run: ping the worker named --name (default: this host's) and exit 0 if it "
        "answers, 1 if not (a container healthcheck)",
    )
    worker.add_argument(
        "--timeout", type=float, default=5.0, help="seconds --check waits for the answer"
    )
    worker.set_defaults(func=_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=_migrate)

    client = commands.add_parser("client", help="terminal client", add_help=False)
    client.add_argument("client_args", nargs=argparse.REMAINDER)
    client.set_defaults(func=_client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `parley` console script."""
    from parley.settings import UnsafeSettingsError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        # The client parses its own options (argparse's REMAINDER refuses a leading option).
        from parley.client.main import main as client_main

        return client_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UnsafeSettingsError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
