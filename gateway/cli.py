"""The `gateway` command: serve, check, openapi, routes, schema.

gateway serve [--config-dir DIR] [--host H] [--port P] [--no-watch] [-v|--verbose]
gateway check [--config-dir DIR] [--diff-against DIR]   exit 0 clean, 1 listing every error
gateway openapi [--profile NAME] [--format json|yaml] [--output FILE]   (format: FILE's suffix)
gateway routes                            id, method, path, upstream, auth, status
gateway schema [--check]                  write (or verify) schemas/config/*.json
gateway webhooks dead [--limit N]         list dead letters (Redis store)
gateway webhooks replay ID                queue a dead letter again

Commands that read the configuration read the config folder's `.env` first (the real
environment wins over it); `serve` takes its host, port and log level from the same place.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from gateway.boot import served_at
from gateway.compiler import compile_config
from gateway.config.dotenv import environment, read_dotenv
from gateway.config.load import load
from gateway.diff import diff_snapshots
from gateway.errors import ConfigErrors
from gateway.logs import LOG_FORMATS
from gateway.sealed import new_key
from gateway.serve.documents import json_text, yaml_text
from gateway.snapshot import CompiledRoute, PluginRoute, ProxyRoute, Snapshot

__all__ = ["main"]


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
YAML_SUFFIXES = (".yaml", ".yml")


def _snapshot_or_exit(config_dir: Path, *, warnings_to: TextIO = sys.stderr) -> Snapshot:
    _folder_or_exit(config_dir)
    environ = _environment(config_dir, warnings_to)
    # The public URL a config without one gets is where `gateway serve` would listen.
    url = served_at(environ.get("GATEWAY_HOST") or DEFAULT_HOST, _port_or_exit(environ))
    try:
        return compile_config(load(config_dir, environ=environ), url)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        count = len(exc.errors)
        print(f"{count} error{'s' if count != 1 else ''} in {config_dir}", file=sys.stderr)
        raise SystemExit(1) from None


def _environment(config_dir: Path, warnings_to: TextIO) -> dict[str, str]:
    """The process environment over the folder's `.env`; its skipped lines are warned of."""
    dotenv = read_dotenv(config_dir)
    for warning in dotenv.warnings if dotenv else ():
        print(f"warning: {warning}", file=warnings_to)
    return environment(dotenv)


def _folder_or_exit(config_dir: Path) -> None:
    if not config_dir.is_dir():
        print(
            f"config folder {config_dir} does not exist (give one with --config-dir)",
            file=sys.stderr,
        )
        raise SystemExit(1)


def _cmd_check(args: argparse.Namespace) -> int:
    snapshot = _snapshot_or_exit(args.config_dir, warnings_to=sys.stdout)
    if args.diff_against is not None:
        previous = _snapshot_or_exit(args.diff_against, warnings_to=sys.stdout)
        lines = diff_snapshots(previous, snapshot).lines()
        print("\n".join(lines) if lines else f"no changes against {args.diff_against}")
    errors = [issue for issue in snapshot.lint if issue.level == "error"]
    for issue in snapshot.lint:
        print(issue, file=sys.stderr if issue.level == "error" else sys.stdout)
    for route_id, reason in snapshot.unconfigured.items():
        print(f"note: route {route_id} answers 503 until configured: {reason}")
    for warning in snapshot.warnings:
        print(f"warning: {warning}")
    for webhook in snapshot.webhooks.values():
        for warning in webhook.warnings:
            print(f"warning: {warning}")
        if webhook.unconfigured:
            print(
                f"note: webhook {webhook.id} answers 503 until configured: {webhook.unconfigured}"
            )
    for schedule in snapshot.schedules:
        if schedule.enabled and schedule.unconfigured:
            print(
                f"note: schedule {schedule.id} does not run until configured: "
                f"{schedule.unconfigured}"
            )
    profiles = ", ".join(snapshot.profiles) or "none"
    print(
        f"{len(snapshot.routes)} routes, {len(snapshot.webhooks)} webhooks, "
        f"{len(snapshot.schedules)} schedules, profiles: {profiles}, "
        f"version {snapshot.version}: {'FAILED' if errors else 'ok'}"
    )
    return 1 if errors else 0


def _tool_names(snapshot: Snapshot) -> dict[str, str]:
    """Route id -> its MCP tool's name, for routes some MCP endpoint offers."""
    return {tool.route: tool.name for toolset in snapshot.mcp.values() for tool in toolset.tools}


def _cmd_mcp_tools(args: argparse.Namespace) -> int:
    snapshot = _snapshot_or_exit(args.config_dir)
    toolset = snapshot.mcp.get(args.profile)
    if toolset is None:
        known = ", ".join(sorted(key for key in snapshot.mcp if key)) or "none"
        print(f"no profile `{args.profile}` (known: {known})", file=sys.stderr)
        return 1
    endpoint = "/mcp" if args.profile is None else f"/mcp/{args.profile}"
    if args.json:
        listed = [
            {
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "inputSchema": tool.input_schema,
                **({"outputSchema": tool.output_schema} if tool.output_schema else {}),
                "annotations": tool.annotations,
                "route": tool.route,
                "scopes": list(tool.scopes),
            }
            for tool in toolset.tools
        ]
        print(json.dumps({"endpoint": endpoint, "tools": listed}, indent=2, default=dict))
        return 0
    hints = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
    letters = "RDIO"
    for tool in toolset.tools:
        flags = "".join(
            letter if tool.annotations[hint] else "-"
            for letter, hint in zip(letters, hints, strict=True)
        )
        arguments = ", ".join(tool.input_schema.get("properties", {})) or "-"
        print(f"{tool.name:<28} {flags}  {tool.method} {tool.path}  ({arguments})")
    print(
        f"{len(toolset.tools)} tools at {endpoint} (R read-only, D destructive, I idempotent,"
        f" O open world); auth: {toolset.scheme or 'none'}"
    )
    return 0


def _cmd_secret_key(args: argparse.Namespace) -> int:
    print(new_key())
    return 0


def _cmd_openapi(args: argparse.Namespace) -> int:
    snapshot = _snapshot_or_exit(args.config_dir)
    if args.profile is None:
        document = dict(snapshot.openapi)
    elif args.profile in snapshot.profiles:
        document = dict(snapshot.profiles[args.profile])
    else:
        known = ", ".join(sorted(snapshot.profiles)) or "none"
        print(f"no profile `{args.profile}` (known: {known})", file=sys.stderr)
        return 1
    text = yaml_text(document) if _openapi_format(args) == "yaml" else json_text(document)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _openapi_format(args: argparse.Namespace) -> str:
    """`--format`, else the output file's suffix (.yaml/.yml: YAML), else JSON."""
    if args.format is not None:
        return str(args.format)
    if args.output and Path(args.output).suffix.lower() in YAML_SUFFIXES:
        return "yaml"
    return "json"


def _cmd_routes(args: argparse.Namespace) -> int:
    snapshot = _snapshot_or_exit(args.config_dir)
    if args.json:
        print(json.dumps(_inventory(snapshot), indent=2))
        return 0
    rows = [("ID", "METHOD", "PATH", "UPSTREAM", "AUTH", "TOOL", "STATUS")]
    tools = _tool_names(snapshot)
    for route in snapshot.routes:
        tool = tools.get(route.id, "-")
        rows.append(
            (
                route.id,
                route.method,
                route.path,
                _target(route),
                route.auth_text,
                tool,
                route.status_text,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[-1]
        )
    return 0


def _inventory(snapshot: Snapshot) -> dict[str, Any]:
    """`gateway routes --json`: what the config serves, without a secret."""
    return {
        "version": snapshot.version,
        "routes": [
            {
                "id": route.id,
                "method": route.method,
                "path": route.path,
                "target": _target(route),
                "auth": route.auth_text,
                "scopes": list(route.scopes),
                "tool": _tool_names(snapshot).get(route.id),
                "file": route.file,
                "line": route.line,
                "status": route.status_text,
            }
            for route in snapshot.routes
        ],
        "webhooks": [
            {
                "id": webhook.id,
                "method": webhook.method,
                "path": webhook.path,
                "file": webhook.file,
                "line": webhook.line,
                "status": f"unconfigured: {webhook.unconfigured}" if webhook.unconfigured else "ok",
            }
            for webhook in snapshot.webhooks.values()
        ],
        "schedules": [
            {
                "id": schedule.id,
                "every_seconds": schedule.every,
                "enabled": schedule.enabled,
                "status": (
                    f"unconfigured: {schedule.unconfigured}" if schedule.unconfigured else "ok"
                ),
            }
            for schedule in snapshot.schedules
        ],
    }


def _target(route: CompiledRoute) -> str:
    """What a route calls, for `gateway routes`."""
    if isinstance(route, ProxyRoute):
        return route.upstream.name
    if isinstance(route, PluginRoute):
        return route.plugin.name
    return "(static)"


def _cmd_schema(args: argparse.Namespace) -> int:
    from gateway.config.jsonschema import write_schemas

    stale = write_schemas(args.config_dir / "schemas" / "config", check=args.check)
    if args.check and stale:
        for path in stale:
            print(f"{path} is out of date: run `gateway schema`", file=sys.stderr)
        return 1
    return 0


def _cmd_webhooks(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.backend import open_backend
    from gateway.queue.events import dead_letter_summary
    from gateway.snapshot.store_url import url_kind

    snapshot = _snapshot_or_exit(args.config_dir)
    if url_kind(snapshot.store_url) == "memory":
        print(
            "the store is memory://: dead letters live inside the running gateway; "
            "use GET /admin/webhooks/dead and POST /admin/webhooks/dead/{id}/replay",
            file=sys.stderr,
        )
        return 2

    async def run() -> int:
        startup = snapshot.startup
        backend = open_backend(
            startup.store_url, startup.store_namespace, startup.dead_letters, startup.memory_limit
        )
        try:
            if args.action == "dead":
                for letter in await backend.queue.dead(args.limit):
                    print(json.dumps(dead_letter_summary(letter)))
                return 0
            if await backend.queue.replay(args.event_id):
                print(f"queued {args.event_id} again")
                return 0
            print(f"no dead letter with id {args.event_id}", file=sys.stderr)
            return 1
        finally:
            await backend.close()

    return asyncio.run(run())


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.run import serve

    _folder_or_exit(args.config_dir)
    dotenv = read_dotenv(args.config_dir)
    environ = environment(dotenv)
    host = args.host or environ.get("GATEWAY_HOST") or DEFAULT_HOST
    port = args.port if args.port is not None else _port_or_exit(environ)
    log_format = args.log_format or environ.get("GATEWAY_LOG_FORMAT") or "text"
    if log_format not in LOG_FORMATS:
        print(f"GATEWAY_LOG_FORMAT must be text or json, got {log_format!r}", file=sys.stderr)
        return 2
    requested = args.workers or environ.get("GATEWAY_WORKERS") or "1"
    if requested != "1" and not args.reuse_port:
        supervised = _serve_workers(args, requested, host, port, environ, log_format)
        if supervised is not None:
            return supervised
    return serve(
        args.config_dir,
        host,
        port,
        watch=not args.no_watch,
        verbose=args.verbose,
        environ=environ,
        dotenv=dotenv,
        log_format=log_format,
        log_level=args.log_level,
        reuse_port=args.reuse_port,
    )


def _serve_workers(
    args: argparse.Namespace,
    requested: str,
    host: str,
    port: int,
    environ: dict[str, str],
    log_format: str,
) -> int | None:
    """`serve --workers N`: the supervisor (gateway.workers) of N `serve --reuse-port`; None
    when N comes out as one (`auto` on one core, or with the memory store)."""
    from gateway.logs import configure_logging
    from gateway.workers import supervise, worker_count

    snapshot = _snapshot_or_exit(args.config_dir)
    startup = snapshot.startup
    try:
        count = worker_count(requested, not startup.store_url.startswith("memory:"))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if count == 1:
        return None
    arguments = ["serve", "--config-dir", str(args.config_dir), "--host", host]
    arguments += ["--port", str(port), "--workers", "1", "--reuse-port"]
    arguments += ["--log-format", log_format]
    if args.no_watch:
        arguments.append("--no-watch")
    if args.verbose:
        arguments.append("--verbose")
    if args.log_level:
        arguments += ["--log-level", args.log_level]
    configure_logging(args.log_level or environ.get("GATEWAY_LOG_LEVEL", "INFO"), log_format)
    grace = startup.drain + startup.shutdown_timeout + 10.0
    return supervise(arguments, count, os.environ, grace)


def _port_or_exit(environ: dict[str, str]) -> int:
    """`GATEWAY_PORT`, else `PORT` (what hosting platforms set), else 8080."""
    for name in ("GATEWAY_PORT", "PORT"):
        value = environ.get(name, "").strip()
        if value:
            port = _port_number(value)
            if port is None:
                hint = ""
                if "://" in value:  # Kubernetes' service links: GATEWAY_PORT=tcp://10.0.0.1:80
                    hint = " (a Kubernetes service link? set enableServiceLinks: false)"
                print(
                    f"{name} must be a port number (0-65535), got {value!r}{hint}",
                    file=sys.stderr,
                )
                raise SystemExit(2)
            return port
    return DEFAULT_PORT


def _port_number(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) <= 65535 else None


def _port(text: str) -> int:
    """`--port`'s type: argparse reports a bad one as a usage error (exit 2)."""
    port = _port_number(text)
    if port is None:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {text!r}")
    return port


def _with_config_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub.add_argument(
        "--config-dir",
        type=Path,
        default=Path(os.environ.get("GATEWAY_CONFIG_DIR", ".")),
        help="folder with gateway.yaml and routes.d/ (default: current directory)",
    )
    return sub


def _version() -> str:
    try:
        return importlib.metadata.version("yaml-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree not installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="YAML-configured integration gateway"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return _with_config_dir(commands.add_parser(name, help=help_text))

    serve = command("serve", "serve the configured routes")
    serve.add_argument(
        "--host", help=f"address to listen on (default: GATEWAY_HOST, else {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port",
        type=_port,
        help=f"port to listen on (default: GATEWAY_PORT, else PORT, else {DEFAULT_PORT})",
    )
    serve.add_argument(
        "--no-watch", action="store_true", help="reload only on SIGHUP or POST /admin/reload"
    )
    serve.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at DEBUG: the route table at start, each upstream call (overrides"
        " GATEWAY_LOG_LEVEL)",
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text (default) or json, one object per line (default: GATEWAY_LOG_FORMAT)",
    )
    serve.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="default: GATEWAY_LOG_LEVEL, else INFO (--verbose: DEBUG)",
    )
    serve.add_argument(
        "--workers",
        help="serving processes sharing the port: a number, or auto (one per core, or per "
        "container CPU; one with the memory store). More than one needs a shared store "
        "(Redis). Default: GATEWAY_WORKERS, else 1",
    )
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT so that other processes can share the port (what each "
        "of --workers does)",
    )
    serve.set_defaults(run=_cmd_serve)
    check = command("check", "load, compile and lint the configuration")
    check.add_argument(
        "--diff-against",
        type=Path,
        metavar="DIR",
        help="also list the routes and operations a reload from DIR to this config would change",
    )
    check.set_defaults(run=_cmd_check)
    openapi = command("openapi", "print the merged OpenAPI document or one profile")
    openapi.add_argument("--profile", help="one action profile (default: the merged document)")
    openapi.add_argument(
        "--format",
        choices=("json", "yaml"),
        help="default: from --output's suffix (.yaml, .yml: yaml), else json",
    )
    openapi.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    openapi.set_defaults(run=_cmd_openapi)
    routes = command("routes", "list the routes and their status")
    routes.add_argument(
        "--json", action="store_true", help="routes, webhooks and schedules as one JSON object"
    )
    routes.set_defaults(run=_cmd_routes)
    schema = command("schema", "write the JSON Schemas of the config files to schemas/config/")
    schema.add_argument("--check", action="store_true", help="fail if the files are out of date")
    schema.set_defaults(run=_cmd_schema)
    mcp = commands.add_parser("mcp", help="inspect the MCP endpoints")
    mcp_actions = mcp.add_subparsers(dest="action", required=True)
    tools = _with_config_dir(
        mcp_actions.add_parser("tools", help="print the tools of /mcp (or of /mcp/<profile>)")
    )
    tools.add_argument("--profile", help="one profile's endpoint (default: /mcp)")
    tools.add_argument("--json", action="store_true", help="the tools as tools/list lists them")
    tools.set_defaults(run=_cmd_mcp_tools)
    secret_key = commands.add_parser(
        "secret-key", help="print a new key for store.encryption_keys (GATEWAY_ENCRYPTION_KEYS)"
    )
    secret_key.set_defaults(run=_cmd_secret_key)
    webhooks = commands.add_parser("webhooks", help="inspect and replay dead letters")
    actions = webhooks.add_subparsers(dest="action", required=True)
    for name, help_text in (
        ("dead", "list dead letters, newest first, one JSON per line"),
        ("replay", "queue one dead letter again as a first attempt"),
    ):
        sub = _with_config_dir(actions.add_parser(name, help=help_text))
        if name == "dead":
            sub.add_argument("--limit", type=int, default=100)
        else:
            sub.add_argument("event_id", metavar="ID")
        sub.set_defaults(run=_cmd_webhooks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
