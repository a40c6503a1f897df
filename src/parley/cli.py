"""`parley serve | hooks | worker | migrate | demo | client`, and one-line errors when they
cannot start."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from parley import __version__, startup


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from parley.realtime.router import MAX_CLIENT_FRAME_BYTES

    settings = startup.load_settings()
    startup.check_port(args.host, args.port)
    if args.workers > 1 and not settings.services_mode:
        # Embedded mode keeps live events, the event log and the job queue in the process's
        # memory: a second process would neither get nor give them.
        raise startup.StartupError(
            f"--workers {args.workers} needs services mode (set PARLEY_REDIS_URL): embedded"
            " mode runs in exactly one process"
        )
    if settings.redis_url:
        startup.check_redis(settings.redis_url)
    startup.check_broker(settings)
    if settings.auto_migrate:
        startup.migrate(settings.database_url)
    else:
        startup.check_database(settings.database_url)
    settings.signing_key()  # generate the local secret once, before workers fork
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
        ws="parley.realtime.ws_protocol:ParleyWebSocketProtocol",
        ws_per_message_deflate=settings.ws_compression,
        # A bigger client frame closes the socket with 1009 while it is being read.
        ws_max_size=MAX_CLIENT_FRAME_BYTES,
    )
    return 0


def _hooks(args: argparse.Namespace) -> int:
    import uvicorn

    settings = startup.load_settings()
    if not settings.services_mode:
        raise startup.StartupError(
            "parley hooks needs services mode (set PARLEY_REDIS_URL); in embedded mode"
            " `parley serve` serves /hooks itself"
        )
    assert settings.redis_url is not None  # services mode
    startup.check_port(args.host, args.port)
    startup.check_redis(settings.redis_url)
    startup.check_broker(settings)
    startup.check_database(settings.database_url)
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
    settings = startup.load_settings()
    print(startup.migrate(settings.database_url).describe())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from parley import demo

    settings = startup.load_settings()
    startup.migrate(settings.database_url)
    try:
        with startup.database_errors(settings.database_url):
            people = demo.run(settings.database_url, force=args.force)
    except demo.NotEmpty as exc:
        raise startup.StartupError(
            f"{exc}; the demo is for an empty database (pass --force to add it anyway)"
        ) from exc
    except demo.AlreadyThere as exc:
        raise startup.StartupError(
            f"{exc}: log in as alice with the password {demo.PASSWORD!r}"
        ) from exc
    names = ", ".join(p.username for p in people)
    print(f"demo data added: users {names}, a direct chat and two groups.")
    print(f"log in as any of them with the password {demo.PASSWORD!r}:")
    print("  the web page:   parley serve, then open http://127.0.0.1:8000/")
    print("  the terminal:   parley client login alice, then parley client chat")
    return 0


def _worker(args: argparse.Namespace) -> int:
    # Before the domains and the app's modules: they import prometheus_client, which must
    # find the worker's metrics directory set (see parley.worker.process).
    from parley.worker.process import check_worker, prepare_metrics, run_worker

    if args.check:
        from parley.tasks import TASKS

        return check_worker(TASKS, name=args.name, timeout=args.timeout)
    prepared = prepare_metrics(args.metrics_port)
    settings = startup.load_settings()
    startup.check_database(settings.database_url)
    if settings.redis_url:
        startup.check_redis(settings.redis_url)
    startup.check_broker(settings)
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, where there is one to tell and the text does not tell it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False) or "(default" in text:
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `parley` command."""
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Parley: a self-hostable chat server with background jobs. Settings are "
        "PARLEY_* environment variables (or a .env file): see .env.example.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a failure (also with PARLEY_LOG_LEVEL=DEBUG)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=text,
            description=text,
            formatter_class=_HelpFormatter,
        )

    serve = command(
        "serve", "serve HTTP and WebSocket (embedded mode: also runs the background jobs)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (above 1: services mode only)"
    )
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=20,
        help="seconds open requests get to finish on shutdown",
    )
    serve.set_defaults(func=_serve)

    hooks = command("hooks", "serve only the inbound webhooks, /hooks/... (services mode)")
    hooks.add_argument("--host", default="127.0.0.1", help="address to listen on")
    hooks.add_argument("--port", type=int, default=8001, help="port to listen on")
    hooks.add_argument("--workers", type=int, default=1, help="server processes")
    hooks.add_argument(
        "--graceful-timeout",
        type=int,
        default=10,
        help="seconds open requests get to finish on shutdown",
    )
    hooks.set_defaults(func=_hooks)

    worker = command("worker", "run a background-job worker (services mode)")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="processes in the pool (default: PARLEY_WORKER_CONCURRENCY)",
    )
    worker.add_argument(
        "--queues",
        default=None,
        help="comma-separated queues to take (default: all of them: parse, previews, billing)",
    )
    worker.add_argument(
        "--name", default=None, help="Celery node name (default: celery@HOSTNAME; %%h = host)"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (default: none served)",
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

    migrate = command("migrate", "apply the database migrations (twice is harmless)")
    migrate.set_defaults(func=_migrate)

    demo = command("demo", "fill an empty database with demo users, chats and messages")
    demo.add_argument(
        "--force", action="store_true", help="add the demo even if the database has users"
    )
    demo.set_defaults(func=_demo)

    client = commands.add_parser(
        "client", help="the terminal client (parley client --help)", add_help=False
    )
    client.add_argument("client_args", nargs=argparse.REMAINDER)
    client.set_defaults(func=_client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `parley` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        # The client parses its own options (argparse's REMAINDER refuses a leading option).
        from parley.client.main import main as client_main

        return client_main(argv[1:])
    args = build_parser().parse_args(argv)
    # Warnings (a generated development secret, say) as one line each, like our errors.
    warnings.formatwarning = lambda message, *_, **__: f"parley: {message}\n"
    debug = args.debug or os.environ.get("PARLEY_LOG_LEVEL", "").upper() == "DEBUG"
    try:
        return int(args.func(args))
    except startup.StartupError as exc:
        if debug:
            traceback.print_exc()
        print(f"parley: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
