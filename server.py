"""Videoflix back-end: `python server.py [--host H] [--port P] [--role R] [--config PATH]`.

Sub-commands: `python server.py createsuperuser [--email E --password P]`.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import getpass
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from core import logs
from core.config import ConfigError, ServerSettings, Settings, load_settings
from handlers.app import handler_modules_for, make_app
from handlers.metrics import metrics_app
from models import ensure_indexes
from models.db import Database, DatabaseUnavailable, open_database
from services.accounts import AccountService
from services.container import ROLE_JOBS, Services, build_services, listening_url
from services.jobs import node_name
from services.media_sweeper import MediaSweeper

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
# Bytes read from a socket at a time: larger chunks stream uploads with less overhead per byte.
UPLOAD_CHUNK = 512 * 1024
log = logging.getLogger("videoflix")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: flags for serving, and the sub-commands."""
    parser = argparse.ArgumentParser(prog="server.py", description="The Videoflix back-end.")
    parser.add_argument("--config", type=Path, default=HERE / "config.yaml", help="YAML settings file")
    parser.add_argument("--host", help="address to listen on (overrides HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides PORT)")
    parser.add_argument(
        "--role", choices=("all", "api", "transcode"), help="what this process does (overrides ROLE)"
    )
    commands = parser.add_subparsers(dest="command")
    superuser = commands.add_parser("createsuperuser", help="create a verified staff user")
    superuser.add_argument("--email", help="the user's e-mail (asked when missing)")
    superuser.add_argument("--password", help="the user's password (asked when missing)")
    return parser.parse_args(argv)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that flags set: the top layer."""
    server = {key: getattr(args, key) for key in ("host", "port", "role") if getattr(args, key) is not None}
    return {"server": server} if server else {}


def configure_logging(fmt: str = "plain") -> None:
    """One line per event on stderr (plain or JSON), each with its request id, secrets redacted."""
    logs.configure(fmt)
    # Tornado's access log is not used (the app logs each request itself, without the query string);
    # its warnings about malformed requests stay.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


async def connect(settings: Settings) -> Database:
    """Open the database, say loudly when it is the in-memory one, and ensure indexes."""
    database = await open_database(
        settings.database.uri, settings.database.name, settings.database.connect_timeout_s
    )
    if database.in_memory:
        log.warning(
            "IN-MEMORY DATABASE: every user, video and job is forgotten when this process exits. "
            "Set MONGODB_URI=mongodb://host:27017/videoflix to keep them."
        )
    await ensure_indexes(database)
    return database


async def bootstrap_admin(settings: Settings, accounts: AccountService) -> None:
    """With ADMIN_EMAIL and ADMIN_PASSWORD set, a verified staff user with that e-mail exists."""
    if settings.admin.email and settings.admin.password:
        user, created = await accounts.ensure_superuser(settings.admin.email, settings.admin.password)
        log.info("admin %s %s", user.email, "created" if created else "already present")


def check_shared_media(settings: Settings, root: Path) -> None:
    """A transcode process on local storage reads what api processes wrote: say so if it sees nothing."""
    if settings.server.role == "transcode" and not (root / "videos").is_dir():
        log.warning(
            "role transcode with local media storage: MEDIA_ROOT %s holds no videos yet; it must be the "
            "same folder (a shared volume) that the api processes write uploads to",
            root,
        )


def use_temporary_media(settings: Settings, database: Database) -> Path | None:
    """An in-memory server with no MEDIA_ROOT set keeps its media in a temporary folder removed at exit:
    no file outlives the documents that point at it (with an object store: its scratch). A MEDIA_ROOT the
    deployer set is honoured."""
    if not database.in_memory:
        return None
    if settings.media.root is not None:
        log.warning(
            "IN-MEMORY DATABASE: media go to MEDIA_ROOT %s and stay there after exit, but the videos "
            "that name them are forgotten",
            settings.media.root,
        )
        return None
    folder = Path(tempfile.mkdtemp(prefix="videoflix-media-"))
    atexit.register(shutil.rmtree, folder, True)  # also when serving ends by an exception
    settings.media.root = str(folder)
    log.warning("IN-MEMORY DATABASE: media go to the temporary folder %s, removed at exit", folder)
    return folder


def media_sweeper(settings: Settings, database: Database, root: Path) -> MediaSweeper | None:
    """On a lasting database, leftovers below MEDIA_ROOT (the media, or with an object store this node's
    scratch) are swept at start and hourly."""
    if database.in_memory:
        return None
    return MediaSweeper(database.videos, root, grace_s=settings.media.sweep_grace_s)


def serve_metrics(settings: Settings, services: Services) -> tornado.httpserver.HTTPServer | None:
    """With metrics.port set, /metrics on a port of its own (for a scraper inside the private network)."""
    if settings.metrics.port is None:
        return None
    sockets = tornado.netutil.bind_sockets(settings.metrics.port, settings.server.host)
    server = tornado.httpserver.HTTPServer(metrics_app(services))
    server.add_sockets(sockets)
    host, port = sockets[0].getsockname()[:2]
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server


def make_server(app: tornado.web.Application, server: ServerSettings) -> tornado.httpserver.HTTPServer:
    """The HTTP server: JSON bodies up to 1 MiB (uploads raise their own limit); large read chunks; slow
    clients closed: headers within `idle_timeout_s` (Tornado's header timeout), other bodies within
    `body_timeout_s` (uploads watch for a stalled body themselves, handlers/streaming.py)."""
    return tornado.httpserver.HTTPServer(
        app,
        xheaders=False,
        max_body_size=MIB,
        chunk_size=UPLOAD_CHUNK,
        idle_connection_timeout=server.idle_timeout_s,
        body_timeout=server.body_timeout_s,
    )


async def serve(settings: Settings) -> None:
    """Run the server until SIGINT or SIGTERM, then stop cleanly."""
    database = await connect(settings)
    temporary_media = use_temporary_media(settings, database)
    sockets = tornado.netutil.bind_sockets(settings.server.port, settings.server.host)
    port = sockets[0].getsockname()[1]
    role = settings.server.role
    host = sockets[0].getsockname()[0]
    services = build_services(
        settings,
        database,
        run_types=ROLE_JOBS[role],
        node=node_name(settings.jobs, port),
        site_url=listening_url(settings.server.host or host, port),
    )
    app = make_app(services, handler_modules=handler_modules_for(role))
    await bootstrap_admin(settings, services.accounts)
    check_shared_media(settings, services.media.root)
    await services.start()
    sweeper = media_sweeper(settings, database, services.media.root)
    if sweeper is not None:
        sweeper.start()
    # SIGINT/SIGTERM stop cleanly from the moment anyone can know the server is there.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = make_server(app, settings.server)
    server.add_sockets(sockets)
    host, port = sockets[0].getsockname()[:2]
    log.info("Videoflix (role %s) listening on http://%s:%d", role, host, port)
    metrics_server = serve_metrics(settings, services)
    await stop.wait()

    log.info("shutting down")
    server.stop()
    if metrics_server is not None:
        metrics_server.stop()
    try:
        await asyncio.wait_for(server.close_all_connections(), settings.server.shutdown_grace_s)
    except TimeoutError:
        log.warning("open requests did not finish within %ss", settings.server.shutdown_grace_s)
    if sweeper is not None:
        await sweeper.stop()
    await services.stop()
    await database.close()
    if temporary_media is not None:
        shutil.rmtree(temporary_media, ignore_errors=True)
    log.info("stopped")


MEMORY_SUPERUSER = (
    "createsuperuser cannot work on the in-memory database (MONGODB_URI=memory://): this command would "
    "write into a database of its own that dies with it, so the running server would never see the user; "
    "start the server with ADMIN_EMAIL and ADMIN_PASSWORD set, or have a staff user make one staff with "
    "PATCH /api/admin/users/<id>/, or set MONGODB_URI to a real MongoDB."
)


async def create_superuser(settings: Settings, email: str | None, password: str | None) -> str:
    """Create (or promote) a verified staff user; asks for what the flags left out."""
    if settings.database.uri.startswith("memory://"):
        raise ConfigError(MEMORY_SUPERUSER)
    email = email or input("E-mail: ").strip()
    while not password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            print("Passwords differ; try again.", file=sys.stderr)
            password = None
    if len(password) < settings.accounts.password_min_length:
        raise ConfigError(f"the password needs at least {settings.accounts.password_min_length} characters")
    database = await connect(settings)
    services = build_services(settings, database, run_types=())
    try:
        user, created = await services.accounts.ensure_superuser(email, password)
    finally:
        await services.stop()
        await database.close()
    return f"superuser {user.email} {'created' if created else 'already existed; now staff and verified'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse flags → load config → run the command. Returns the exit status."""
    args = parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.config, overrides=flag_overrides(args))
    except ConfigError as err:
        log.error("configuration error: %s", err)
        return 2
    configure_logging(settings.server.log_format)
    try:
        if args.command == "createsuperuser":
            print(asyncio.run(create_superuser(settings, args.email, args.password)))
        else:
            asyncio.run(serve(settings))
    except (DatabaseUnavailable, ConfigError) as err:
        log.error("%s", err)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        log.error("cannot start: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
