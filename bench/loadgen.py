"""A small HTTP/1.1 load generator, run in its own process (so it never shares a GIL or an event
loop with the server or the measuring script). Keep-alive connections over asyncio streams on
uvloop; far cheaper per request than httpx, so the generator is not what saturates first.

Open loop (`--rate R --duration S`): request i is scheduled at start + i/R whatever happened to
earlier ones; latency is measured from the *scheduled* time, so a server that falls behind is
charged for the queueing it causes (no coordinated omission). A request waits for a free
connection when `--max-conns` are busy, and that wait counts too.

Closed loop (`--concurrency C --count N`): C workers each send the next request when their last
one answered; for saturation throughput.

Bodies may hold `__I__` (request index) and `__T__` (wall-clock time.time() at send), replaced
per request. `--header "name: value"` (repeatable) is sent on every request, e.g. the
`Authorization` and `x-tenant-id` the platform requires. Only 127.0.0.1/localhost targets are
accepted; every run is bounded by --count and --max-seconds. Prints one JSON report line."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
    }


# uvicorn closes a keep-alive connection after 5 s idle; never reuse one idle this long
IDLE_REUSE_SECONDS = 3.0


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.perf_counter()
        self.reused = False

    async def request(self, payload: bytes) -> tuple[int, bytes, bool]:
        """Send one request; (status, body, keep_alive)."""
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers: dict[bytes, bytes] = {}
        for line in head.split(b"\r\n")[1:]:
            if b":" in line:
                key, _, value = line.partition(b":")
                headers[key.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = b""
        return status, body, headers.get(b"connection", b"").lower() != b"close"

    def close(self) -> None:
        self.writer.close()


class Pool:
    def __init__(self, host: str, port: int, max_conns: int) -> None:
        self.host, self.port, self.max_conns = host, port, max_conns
        self.idle: list[Conn] = []
        self.total = 0
        self.peak = 0
        self.waiters: asyncio.Queue[Conn | None] = asyncio.Queue()
        self.waiting = 0

    async def acquire(self) -> Conn:
        while self.idle:
            conn = self.idle.pop()
            if (
                time.perf_counter() - conn.last_used < IDLE_REUSE_SECONDS
                and not conn.reader.at_eof()
            ):
                conn.reused = True
                return conn
            conn.close()  # stale: the server may have closed it
            self.total -= 1
        if self.total < self.max_conns:
            self.total += 1
            self.peak = max(self.peak, self.total)
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except BaseException:
                self.total -= 1
                raise
            return Conn(reader, writer)
        self.waiting += 1
        try:
            conn = await self.waiters.get()
        finally:
            self.waiting -= 1
        if conn is None:  # a connection died; open a new one in its place
            return await self.acquire()
        return conn

    def release(self, conn: Conn, ok: bool) -> None:
        if not ok:
            conn.close()
            self.total -= 1
            if self.waiting:
                self.waiters.put_nowait(None)
            return
        conn.last_used = time.perf_counter()
        conn.reused = True
        if self.waiting:
            self.waiters.put_nowait(conn)
        else:
            self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("loadgen only targets 127.0.0.1")
    host, port = url.hostname, url.port or 80
    pool = Pool(host, port, args.max_conns)
    template = args.body or ""
    head = (
        f"{args.method} {args.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in args.headers)
    )
    from_scheduled: list[float] = []
    from_sent: list[float] = []
    lag: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    retries: list[str] = []
    wall_first_send: list[float] = []
    wall_last_done = 0.0
    n = args.count if args.count else int(args.rate * args.duration)
    hard_stop = time.perf_counter() + args.max_seconds

    async def one(i: int, scheduled: float) -> None:
        nonlocal wall_last_done
        body = template.replace("__I__", str(i)).replace("__T__", repr(time.time())).encode()
        payload = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for attempt in (1, 2):
            conn: Conn | None = None
            ok = False
            try:
                conn = await pool.acquire()
                sent = time.perf_counter()
                if not wall_first_send:
                    wall_first_send.append(time.time())
                if attempt == 1:
                    lag.append(sent - scheduled)
                status, _, keep = await asyncio.wait_for(conn.request(payload), args.timeout)
                done = time.perf_counter()
                ok = keep
                wall_last_done = time.time()
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if 200 <= status < 300:
                    from_scheduled.append(done - scheduled)
                    from_sent.append(done - sent)
                else:
                    errors.append(f"HTTP {status}")
                return
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                # a reused keep-alive connection the server closed before reading the request
                # answers nothing at all: the request was not processed, send it again once
                stale = (
                    conn is not None
                    and conn.reused
                    and (
                        isinstance(exc, ConnectionResetError | BrokenPipeError)
                        or (isinstance(exc, asyncio.IncompleteReadError) and not exc.partial)
                    )
                )
                if attempt == 1 and stale:
                    retries.append(f"{type(exc).__name__}")
                    continue
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                if conn is not None:
                    pool.release(conn, ok)

    started = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    if args.concurrency:  # closed loop
        counter = iter(range(n))

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() > hard_stop:
                    return
                await one(i, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    else:  # open loop
        interval = 1.0 / args.rate
        for i in range(n):
            scheduled = started + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() > hard_stop:
                break
            task = asyncio.create_task(one(i, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.1, hard_stop - time.perf_counter()))
    elapsed = time.perf_counter() - started
    pool.close()
    completed = len(from_scheduled)
    return {
        "mode": "closed" if args.concurrency else "open",
        "target_rate": args.rate,
        "concurrency": args.concurrency,
        "scheduled": n,
        "completed_ok": completed,
        "errors": len(errors),
        "unfinished": n - completed - len(errors),
        "error_samples": sorted(set(errors))[:5],
        "stale_connection_retries": len(retries),
        "statuses": statuses,
        "elapsed_s": round(elapsed, 3),
        "achieved_rate": round(completed / elapsed, 1) if elapsed else 0.0,
        "latency": summary(from_scheduled),
        "service_latency": summary(from_sent),
        "generator_lag": summary(lag),
        "connections_peak": pool.peak,
        "wall_first_send": wall_first_send[0] if wall_first_send else None,
        "wall_last_done": wall_last_done,
    }


def header(text: str) -> tuple[str, str]:
    """`name: value` -> (name, value); a name of token characters, no line breaks anywhere."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if (
        not sep
        or not name
        or any(c in text for c in "\r\n")
        or not all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)
    ):
        # the value is left out of the message: it may be a credential
        shown = f" (name {name!r})" if sep else ""
        raise argparse.ArgumentTypeError(f"expected 'name: value'{shown}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--path", default="/")
    parser.add_argument("--body", default="")
    parser.add_argument(
        "--header",
        dest="headers",
        type=header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header sent on every request (repeatable)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="open loop: seconds")
    parser.add_argument("--concurrency", type=int, default=0, help="closed loop: workers")
    parser.add_argument("--count", type=int, default=0, help="requests (closed loop: required)")
    parser.add_argument("--max-conns", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    if not args.concurrency and args.rate <= 0:
        parser.error("give --rate (open loop) or --concurrency with --count (closed loop)")
    if args.concurrency and not args.count:
        parser.error("closed loop needs --count")
    report = uvloop.run(run(args)) if uvloop is not None else asyncio.run(run(args))
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
