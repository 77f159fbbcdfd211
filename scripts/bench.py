"""The measurements behind `scripts/bench`: the service beside its floors, on this machine.

Run by `scripts/bench`, which builds what is measured first. Prints one table:

- warm `access-token` on the local server, against a hello-world axum server answering the
  same JSON (`bench-floor`'s `hello-axum`);
- `GET /oauth/start/{link}` on the local server, against grant on express with memory
  sessions (when Node.js and npm are there);
- Lambda init (spawn to the first poll of the Runtime API) of each function, against a
  hello-world `lambda_http` + axum binary (`hello-lambda`);
- the size of each function's arm64 `bootstrap` zipped at level 9, against the same floor.

Load comes from wrk (`-t2 -c32 -d8s`, loopback). Nothing here is a test: it reports figures.
"""

import concurrent.futures
import http.client
import http.server
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
LAMBDA = ROOT / "target" / "lambda"
ADMIN_KEY = "bench-admin-key-0123456789abcdefghijklmnop"
WRK = ["wrk", "-t2", "-c32", "-d8s", "--latency"]
FUNCTIONS = ["oauth-start", "oauth-callback", "token-api", "event-relay"]
INIT_RUNS = 15


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def start(cmd, ready, env=None, cwd=None):
    """Starts a process and waits for the stdout line containing `ready`; answers both."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if ready in line:
            # Keep draining, so a chatty process never blocks on a full pipe.
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, line.strip()
    proc.kill()
    sys.exit(f"bench: {cmd[0]} did not print {ready!r}")


def request(base, method, path, body=None, headers=None):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h.setdefault("content-type", "application/json")
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, resp.getheaders(), payload


def wrk(url, headers=(), script=None):
    cmd = list(WRK)
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    return rps, float(p50.group(1)) * scale, errors


class Service:
    """The local server (release build) with the test provider, a bot and a connected token."""

    def __init__(self, tmp):
        self.provider, line = start(
            ["node", str(ROOT / "tests/provider/server.mjs")], "issuer"
        )
        issuer = json.loads(line)["issuer"]
        providers = tmp / "providers.yaml"
        providers.write_text(
            "providers:\n  demo:\n    client_id: demo-client\n"
            f"    client_secret: bench-client-secret\n    issuer: {issuer}\n"
        )
        self.proc, line = start(
            [
                str(RELEASE / "local-server"),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(tmp / "data"),
                "--providers",
                str(providers),
            ],
            "listening on",
            env={"ADMIN_KEY": ADMIN_KEY, "ALLOW_LOOPBACK_PROVIDERS": "true"},
        )
        self.base = re.search(r"(http://\S+)", line).group(1)
        status, _, body = request(
            self.base,
            "POST",
            "/v1/admin/bots",
            {"bot_id": "acme"},
            {"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert status == 201, body
        self.key = json.loads(body)["api_key"]
        self.auth = {"authorization": f"Bearer {self.key}"}
        status, _, body = request(
            self.base,
            "PUT",
            "/v1/bots/acme/integrations",
            "- provider: demo\n  scope: email\n  context: user\n",
            {**self.auth, "content-type": "application/yaml"},
        )
        assert status == 200, body
        self.token_id = self.connect()

    def link(self):
        status, _, body = request(
            self.base,
            "POST",
            "/v1/bots/acme/oauth-links",
            {"alias": "demo", "user_id": "u-1"},
            self.auth,
        )
        assert status == 201, body
        return urllib.parse.urlsplit(json.loads(body)["url"]).path

    def connect(self):
        """One sign-in through the test provider, as a browser makes it."""
        status, headers, _ = request(self.base, "GET", self.link())
        assert status in (302, 303), status
        h = dict((k.lower(), v) for k, v in headers)
        cookie = h["set-cookie"].split(";")[0]
        authorize = urllib.parse.urlsplit(h["location"])
        status, headers, _ = request(
            f"{authorize.scheme}://{authorize.netloc}",
            "GET",
            f"{authorize.path}?{authorize.query}",
        )
        back = urllib.parse.urlsplit(dict((k.lower(), v) for k, v in headers)["location"])
        status, _, body = request(
            self.base, "GET", f"{back.path}?{back.query}", headers={"cookie": cookie}
        )
        assert status == 200, body
        status, _, body = request(self.base, "GET", "/v1/bots/acme/users/u-1/tokens", headers=self.auth)
        return json.loads(body)["tokens"]["demo"]

    def stop(self):
        self.proc.kill()
        self.provider.kill()


def links_script(tmp, paths):
    """A wrk script that walks `paths`, each at most 10 times (a link starts 10 flows)."""
    script = tmp / "links.lua"
    listed = ",\n".join(json.dumps(p) for p in paths)
    script.write_text(
        "local paths = {\n" + listed + "\n}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  return wrk.format('GET', paths[(n % #paths) + 1])\n"
        "end\n"
    )
    return str(script)


def grant_start(tmp):
    """`GET /connect/google` on grant + express + express-session (memory store)."""
    if not shutil.which("node") or not shutil.which("npm"):
        log("no Node.js/npm: the grant figure is left out")
        return None
    app = tmp / "grant"
    app.mkdir()
    (app / "package.json").write_text('{"private": true}')
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "grant@5", "express@4", "express-session@1"],
        cwd=app,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (app / "server.js").write_text(
        "const express = require('express');\n"
        "const session = require('express-session');\n"
        "const grant = require('grant').express();\n"
        "const app = express();\n"
        "app.use(session({secret: 'bench', saveUninitialized: true, resave: false}));\n"
        "app.use(grant({defaults: {origin: 'http://127.0.0.1', transport: 'session', state: true},\n"
        "  google: {key: 'bench-client', secret: 'bench-secret', scope: ['openid', 'email']}}));\n"
        "const server = app.listen(0, '127.0.0.1', () => console.log('grant listening on ' + server.address().port));\n"
    )
    proc, line = start(["node", "server.js"], "grant listening on", cwd=app)
    port = line.rsplit(" ", 1)[1]
    try:
        return wrk(f"http://127.0.0.1:{port}/connect/google")
    finally:
        proc.kill()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Records when the first `GET .../invocation/next` arrives, and never answers it."""

    first_poll = None
    event = threading.Event()

    def do_GET(self):
        if "/runtime/invocation/next" in self.path and RuntimeApi.first_poll is None:
            RuntimeApi.first_poll = time.perf_counter()
            RuntimeApi.event.set()
        time.sleep(30)

    def log_message(self, *args):
        pass


def init_ms(binary, env):
    """Median milliseconds from spawn to the first poll of the Runtime API."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    samples = []
    for _ in range(INIT_RUNS):
        RuntimeApi.first_poll = None
        RuntimeApi.event.clear()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(binary)],
            env={**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not RuntimeApi.event.wait(10):
            proc.kill()
            sys.exit(f"bench: {binary.name} never polled the Runtime API")
        samples.append((RuntimeApi.first_poll - t0) * 1000)
        proc.kill()
        proc.wait()
    server.shutdown()
    return statistics.median(samples)


def lambda_env():
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "TABLE_NAME": "integrations",
        "KMS_KEY_ID": "arn:aws:kms:us-east-1:000000000000:key/bench",
        "EVENT_BUS_NAME": "integrations-events",
        "PUBLIC_URL": "https://integrations.example.com",
        "ADMIN_KEY_SHA256": "0" * 64,
    }


def zipped(path):
    out = pathlib.Path(tempfile.mkstemp(suffix=".zip")[1])
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    size = out.stat().st_size
    out.unlink()
    return size


def main():
    rows = []
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-"))
    svc = Service(tmp)
    try:
        log("warm access-token")
        url = f"{svc.base}/v1/bots/acme/tokens/{svc.token_id}/access-token"
        ours = wrk(url, [f"Authorization: Bearer {svc.key}"])
        floor_proc, line = start([str(RELEASE / "hello-axum")], "listening on")
        floor_base = re.search(r"(http://\S+)", line).group(1)
        floor = wrk(f"{floor_base}/v1/bots/acme/tokens/{svc.token_id}/access-token")
        floor_proc.kill()
        assert ours[2] == 0, f"{ours[2]} access-token answers were not 2xx"
        rows.append((
            "warm access-token (local server)",
            f"{ours[0]:,.0f} req/s, p50 {ours[1]:.2f} ms",
            f"hello-world axum: {floor[0]:,.0f} req/s",
            ours[0] / floor[0],
            ">= 0.5",
        ))

        log("minting links for the start figure")
        # Enough links that none starts more than its 10 flows in 8 s at 15,000 starts/s.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            paths = list(pool.map(lambda _: svc.link(), range(12_000)))
        script = links_script(tmp, paths)
        start_fig = wrk(svc.base, script=script)
        assert start_fig[2] == 0, f"{start_fig[2]} starts were refused: mint more links"
    finally:
        svc.stop()
    grant = grant_start(tmp)
    rows.append((
        "GET /oauth/start/{link} (local server)",
        f"{start_fig[0]:,.0f} req/s, p50 {start_fig[1]:.2f} ms",
        f"grant on express, memory sessions: {grant[0]:,.0f} req/s" if grant else "grant: not measured (no Node.js)",
        start_fig[0] / grant[0] if grant else float("nan"),
        ">= 3",
    ))

    log("Lambda init")
    env = lambda_env()
    floor_init = init_ms(RELEASE / "hello-lambda", env)
    inits = {f: init_ms(RELEASE / f, env) for f in FUNCTIONS}
    worst = max(inits, key=inits.get)
    rows.append((
        "Lambda init (spawn to first poll)",
        ", ".join(f"{f} {ms:.1f} ms" for f, ms in inits.items()),
        f"hello-world lambda_http + axum: {floor_init:.1f} ms",
        inits[worst] / floor_init,
        "<= 1.5",
    ))

    log("packages")
    sizes = {f: zipped(LAMBDA / f / "bootstrap") for f in FUNCTIONS}
    floor_size = zipped(LAMBDA / "hello-lambda" / "bootstrap")
    biggest = max(sizes, key=sizes.get)
    rows.append((
        "package (arm64 bootstrap, zip -9)",
        ", ".join(f"{f} {b / 1e6:.2f} MB" for f, b in sizes.items()),
        f"hello-world: {floor_size / 1e6:.2f} MB",
        sizes[biggest] / floor_size,
        "<= 3 MB",
    ))

    cpu = next(
        (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
        platform.processor(),
    )
    print(f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
          f"load from wrk {' '.join(WRK[1:])} on loopback; release builds.\n")
    print("| figure | this service | floor or peer | ratio | target |")
    print("|---|---|---|---|---|")
    for name, ours, peer, ratio, target in rows:
        print(f"| {name} | {ours} | {peer} | {ratio:.2f} | {target} |")


if __name__ == "__main__":
    main()
