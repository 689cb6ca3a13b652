"""Screenshot one task the way an annotator sees it, with headless Chromium (no Playwright).

Logs in through Label Studio's login form, hands the session cookie to Chromium over the DevTools
protocol, opens the labeling stream of a project (the first task of the queue) and saves a PNG.

    .venv/bin/python docs/screenshot_task.py --url http://127.0.0.1:8080 --project 3 \
        --email admin@relabeler.local --password ... --out docs/task.png

Needs Debian's ``chromium`` (``apt-get install -y chromium``); talks to it with aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import httpx


def login(url: str, email: str, password: str) -> dict[str, str]:
    """Session cookies from Label Studio's login form."""
    with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as http:
        http.get("/user/login/")
        response = http.post("/user/login/", data={
            "email": email, "password": password,
            "csrfmiddlewaretoken": http.cookies.get("csrftoken")},
            headers={"Referer": f"{url}/user/login/"})
        response.raise_for_status()
        cookies = dict(http.cookies.items())
    if "sessionid" not in cookies:
        raise SystemExit("login failed: no session cookie (wrong email or password?)")
    return cookies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def capture(ws_url: str, page_url: str, cookies: dict[str, str], host: str, out: Path,
                  width: int, height: int, wait: float) -> None:
    ids = itertools.count(1)
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url,
                                                                      max_msg_size=0) as ws:
        async def send(method: str, **params) -> dict:
            call_id = next(ids)
            await ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
            while True:
                message = json.loads((await ws.receive()).data)
                if message.get("id") == call_id:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})

        await send("Network.enable")
        for name, value in cookies.items():
            await send("Network.setCookie", name=name, value=value, domain=host, path="/")
        await send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                   deviceScaleFactor=1, mobile=False)
        await send("Page.enable")
        await send("Page.navigate", url=page_url)
        await asyncio.sleep(wait)  # the labeling UI renders after several API calls
        shot = await send("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--task", type=int, help="a task id; default: the labeling stream")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--out", default="docs/task.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--wait", type=float, default=12.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    cookies = login(args.url, args.email, args.password)
    page = f"{args.url}/projects/{args.project}/data?" + (
        f"task={args.task}" if args.task else "labeling=1")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="relabeler-chromium-") as profile:
        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
             "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    ws_url = next(t["webSocketDebuggerUrl"] for t in targets
                                  if t.get("type") == "page")
                    break
                except (httpx.HTTPError, StopIteration):
                    if time.monotonic() > deadline:
                        raise SystemExit("chromium did not open its DevTools port") from None
                    time.sleep(0.3)
            asyncio.run(capture(ws_url, page, cookies, urlparse(args.url).hostname or "",
                                Path(args.out), args.width, args.height, args.wait))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
