"""The servers of a bench run: backends, the peers (nginx, fast-gateway) and the Python proxies."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

from tests.bench.procs import ROOT, WORK, Procs, free_port, wait_http

# About 200 bytes of JSON, as a typical small API answer (NOTES.md measured with the same size).
PAYLOAD = (
    '{"id":"42","name":"Ada Lovelace","email":"ada@example.com","plan":"pro",'
    '"tags":["math","engines"],"created_at":"2026-11-27T12:00:00Z","active":true,'
    '"balance":1234.5,"note":"static answer of the bench backend"}'
)
FAST_GATEWAY = ROOT / "tools" / "bench" / "fast-gateway.js"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def _nginx(procs: Procs, name: str, server_block: str, upstream: str = "") -> str:
    """One nginx master + 1 worker with a config of its own under bench/work, in the foreground."""
    prefix = WORK / name
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            worker_processes 1;
            pid {prefix}/nginx.pid;
            error_log {prefix}/error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {prefix}/tmp/body;
                proxy_temp_path {prefix}/tmp/proxy;
                fastcgi_temp_path {prefix}/tmp/fastcgi;
                uwsgi_temp_path {prefix}/tmp/uwsgi;
                scgi_temp_path {prefix}/tmp/scgi;
                keepalive_requests 1000000;
                {upstream}
                server {{
                    listen 127.0.0.1:{port};
                    {server_block}
                }}
            }}
            """
        )
    )
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    proc = procs.start(name, argv)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/", proc)
    return url


def nginx_backend(procs: Procs) -> str:
    """The backend every proxy forwards to: nginx answering a static JSON, so it costs little CPU."""
    body = PAYLOAD.replace("'", "\\'")
    return _nginx(
        procs, "nginx-backend", f"location / {{ default_type application/json; return 200 '{body}'; }}"
    )


def nginx_proxy(procs: Procs, backend: str) -> str:
    upstream = f"upstream backend {{ server {backend.removeprefix('http://')}; keepalive 64; }}"
    block = (
        'location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    )
    return _nginx(procs, "nginx-proxy", block, upstream)


def fast_gateway(procs: Procs, backend: str) -> str:
    if not (ROOT / "tools" / "bench" / "node_modules" / "fast-gateway").exists():
        raise RuntimeError("fast-gateway is not installed (npm ci --prefix tools/bench)")
    port = free_port()
    proc = procs.start("fast-gateway", ["node", str(FAST_GATEWAY), str(port), backend])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/ping", proc)
    return url


def python_server(procs: Procs, kind: str, env: dict[str, str], *extra: str) -> tuple[str, Path]:
    """`tests.bench.serve <kind>` under one uvicorn worker; returns its URL and its info file."""
    port = free_port()
    info = WORK / f"serve-{kind}-{port}.json"
    argv = [sys.executable, "-m", "tests.bench.serve", kind, "--port", str(port), "--info", str(info), *extra]
    proc = procs.start(f"serve-{kind}", argv, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/ping", proc, timeout_s=30)
    return url, info


# DynamoDB keeps connections alive, and applies the writes to one item one at a time.
# moto's own server (werkzeug) closes every connection and runs requests on threads with
# no lock, losing conditional updates under a race: serve its app behind uvicorn
# (keep-alive) and one request at a time.
MOTO = (
    "import sys, threading, uvicorn; from uvicorn.middleware.wsgi import WSGIMiddleware; "
    "from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app; "
    "inner = DomainDispatcherApplication(create_backend_app); lock = threading.Lock()\n"
    "def app(environ, start_response):\n"
    "    with lock:\n"
    "        return list(inner(environ, start_response))\n"
    "uvicorn.run(WSGIMiddleware(app), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


def moto_server(procs: Procs) -> str:
    port = free_port()
    proc = procs.start("moto", [sys.executable, "-c", MOTO, str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/moto-api/", proc, timeout_s=30)
    return url
