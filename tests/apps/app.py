#!/usr/bin/env python3
"""The live-mode test app (Python 3 standard library only).

Serves on 127.0.0.1:$PORT:
  /         "version=$APP_VERSION pid=N"
  /healthz  200, or 500 when APP_VERSION starts with "broken" (a release that must roll back)
  /db       writes a row to, and counts the rows of, PostgreSQL at DATABASE_HOST/PORT as
            DATABASE_USER with DATABASE_PASSWORD (through psql)
  /slow     answers after ?ms=N milliseconds (at most 30000): a request in flight across a release
  /cache    increments and reads a key of Redis at REDIS_HOST/PORT with REDIS_PASSWORD
            (through redis-cli)
Secrets from the environment go to the clients through their environment, never argv or output.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "unknown")


def tool(name):
    found = shutil.which(name)
    if found:
        return found
    for path in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return path
    return name


def run(argv, env):
    out = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(f"{os.path.basename(argv[0])} failed: {out.stderr.strip()[:300]}")
    return out.stdout.strip()


def db():
    user = os.environ["DATABASE_USER"]
    argv = [tool("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "-h", os.environ["DATABASE_HOST"], "-p", os.environ["DATABASE_PORT"],
            "-U", user, "-d", os.environ.get("DATABASE_NAME", user), "-c",
            "CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, version text NOT NULL);",
            "-c", f"INSERT INTO visits (version) VALUES ('{VERSION}');",
            "-c", "SELECT count(*) FROM visits;", "-c", "SHOW server_version;"]
    lines = run(argv, {"PGPASSWORD": os.environ.get("DATABASE_PASSWORD", ""), "PGCONNECT_TIMEOUT": "5"}).splitlines()
    return {"engine": "postgresql", "rows": int(lines[0]), "server_version": lines[1]}


def cache():
    argv = [tool("redis-cli"), "--no-auth-warning", "-h", os.environ["REDIS_HOST"], "-p", os.environ["REDIS_PORT"]]
    env = {}
    if os.environ.get("REDIS_PASSWORD"):
        env["REDISCLI_AUTH"] = os.environ["REDIS_PASSWORD"]
    count = int(run(argv + ["INCR", "konstacks:visits"], env))
    read = int(run(argv + ["GET", "konstacks:visits"], env))
    return {"engine": "redis", "incremented_to": count, "read_back": read}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, kind="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            if VERSION.startswith("broken"):
                self.reply(500, f"unhealthy: version {VERSION} is broken\n")
            else:
                self.reply(200, "ok\n")
        elif path == "/slow":
            query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
            ms = min(int(query.get("ms", "1000") or 0), 30000)
            time.sleep(ms / 1000)
            self.reply(200, f"version={VERSION} slept={ms}ms\n")
        elif path in ("/db", "/cache"):
            try:
                result = db() if path == "/db" else cache()
                self.reply(200, json.dumps({"version": VERSION, **result}) + "\n", "application/json")
            except Exception as e:  # the evidence goes to the caller and the log
                print(f"{path}: {e}", file=sys.stderr, flush=True)
                self.reply(502, json.dumps({"version": VERSION, "error": str(e)}) + "\n", "application/json")
        else:
            self.reply(200, f"version={VERSION} pid={os.getpid()}\n")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        pass  # one line per request would flood the log under load


def main():
    port = int(os.environ["PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"app {VERSION} listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
