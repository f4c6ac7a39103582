"""Response header names as each HTTP parser sends them, read by real clients over a real socket.

uvicorn's httptools protocol (the default parser, `DLSERVE_HTTP_PARSER`) would write every response header
name in lowercase, and h11 writes them as the application gives them. HTTP/1.1 field names are
case-insensitive (RFC 9110 section 5.1), so HTTP clients look them up case-insensitively: the standard library
(urllib, http.client), httpx, and tritonclient's two HTTP clients (geventhttpclient and aiohttp underneath),
which must find Inference-Header-Content-Length to split a binary V2 answer. But code that copies the headers
into a plain dict and looks up "Content-Type" exists (our own contract check did it), so under both parsers
dlserve sends the conventional case: app/middleware.py's names for h11, app/server.py's _ConventionalHead
for httptools.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
import urllib.error
import urllib.request

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as th
import tritonclient.http.aio as th_aio

from tests.conftest import ADMIN_KEY, upload
from tests.live_server import live_server

TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
KEY = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(params=["httptools", "h11"])
def server(request, client, settings, tiny_onnx):
    upload(client, "tiny", tiny_onnx)
    assert client.put("/v1/models/tiny/aliases/production", json={"version": 1}).status_code == 200
    with live_server(settings.model_copy(update={"http_parser": request.param})) as url:
        yield request.param, url


def test_clients_read_the_headers_whatever_their_case(server, tiny_onnx):
    parser, url = server
    with pytest.raises(urllib.error.HTTPError) as refused:  # no key: a 401 problem with WWW-Authenticate
        urllib.request.urlopen(f"http://{url}/v1/models")
    assert "problem+json" in refused.value.headers["Content-Type"]
    assert refused.value.headers["WWW-Authenticate"] == "Bearer" and refused.value.headers["X-Request-ID"]
    as_dict = dict(refused.value.headers)  # what a script that keeps headers in a plain dict sees
    assert "problem+json" in as_dict["Content-Type"] and as_dict["WWW-Authenticate"] == "Bearer"
    with urllib.request.urlopen(urllib.request.Request(f"http://{url}/v1/models", headers=KEY)) as ok:
        assert dict(ok.headers)["Content-Type"] == "application/json" and ok.read().startswith(b"[")

    conn = http.client.HTTPConnection(url)
    conn.request("GET", "/v1/models", headers={**KEY, "X-Request-ID": "case-1"})
    answer = conn.getresponse()
    assert answer.status == 200 and answer.getheader("content-type") == answer.getheader("Content-Type")
    assert answer.getheader("X-Request-ID") == "case-1" and answer.read().startswith(b"[")
    conn.close()

    r = httpx.get(f"http://{url}/v1/models/none", headers=KEY)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["instance"] == r.headers["X-Request-ID"]

    # Binary V2: the client splits the answer at Inference-Header-Content-Length, or fails.
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = ort.InferenceSession(tiny_onnx).run(None, {"input": x})[0]
    triton = th.InferenceServerClient(url=url)
    try:
        got = triton.infer("tiny", [_input(th, x)], headers=dict(KEY),
                           outputs=[th.InferRequestedOutput("logits", binary_data=True)]).as_numpy("logits")
    finally:
        triton.close()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    async def infer_aio():
        c = th_aio.InferenceServerClient(url=url)
        try:
            result = await c.infer("tiny", [_input(th_aio, x)], headers=dict(KEY),
                                   outputs=[th_aio.InferRequestedOutput("logits", binary_data=True)])
            return result.as_numpy("logits")
        finally:
            await c.close()

    np.testing.assert_allclose(asyncio.run(infer_aio()), want, rtol=1e-5, atol=1e-6)


def test_raw_answers_carry_valid_names_in_their_conventional_case(server):
    parser, url = server
    host, port = url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 401 ")
    names = [line.split(b":", 1)[0] for line in lines[1:]]
    assert all(TOKEN.match(n) for n in names), names
    wanted = {b"content-type", b"content-length", b"www-authenticate", b"x-request-id"}
    assert wanted <= {n.lower() for n in names}
    # the conventional case under either parser: a plain dict's "Content-Type" finds it
    assert {b"Content-Type", b"Content-Length", b"WWW-Authenticate", b"X-Request-ID"} <= set(names), names
    assert b'"status":401' in body.replace(b" ", b"")


def _input(module, x: np.ndarray):
    inp = module.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    return inp
