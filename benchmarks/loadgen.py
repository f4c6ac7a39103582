"""A small closed-loop HTTP/1.1 load generator: `concurrency` keep-alive connections, each sending its
next request as soon as the previous answer arrives. Raw asyncio streams on uvloop, requests built
in advance, so the client spends as little of the machine's CPU as possible (it shares it with the
server under test)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass
class Result:
    concurrency: int
    seconds: float
    completed: int
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float
    mean_ms: float
    answered: int = 0  # every answer, the warm-up's too (what a server's CPU time before/after was spent on)

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds


def build_requests(path: str, bodies: list[bytes], headers: dict[str, str]) -> list[bytes]:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return [f"POST {path} HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(b)}\r\n\r\n".encode() + b
            for b in bodies]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


async def _run(host: str, port: int, requests: list[bytes], concurrency: int, warmup: float,
               duration: float) -> Result:
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds
    start = time.perf_counter() + warmup
    end = start + duration
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    answered = 0

    async def client(i: int) -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection(host, port)
        k = i
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            writer.write(requests[k % len(requests)])
            status = await _read_response(reader)
            t1 = time.perf_counter()
            answered += 1
            if t0 >= start:
                latencies.append(t1 - t0)
                statuses[status] += 1
            k += concurrency
        writer.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    lat = np.array(latencies) * 1000
    return Result(concurrency, duration, len(latencies), dict(statuses), float(np.percentile(lat, 50)),
                  float(np.percentile(lat, 99)), float(lat.mean()), answered)


def run(host: str, port: int, requests: list[bytes], concurrency: int, warmup: float = 2.0,
        duration: float = 10.0) -> Result:
    try:
        import uvloop

        return uvloop.run(_run(host, port, requests, concurrency, warmup, duration))
    except ImportError:
        return asyncio.run(_run(host, port, requests, concurrency, warmup, duration))


def wait_until_up(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")
