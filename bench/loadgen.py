"""A minimal HTTP/1.1 keep-alive client for the benchmarks' hot path (`POST /orders`).

Why hand-written: the load generator shares a 2-core machine with the services it
measures, so every millisecond of CPU it spends per request is taken from them. httpx
(with httpcore and anyio underneath) cost 0.7-2 ms of CPU per request as the benchmarks
used it: at 500 orders/s, a third of a core to a whole one of the two. This client writes
each request as one pre-encoded buffer on an asyncio stream and parses only what it needs
of the response (status line, framing headers, body): 0.05-0.2 ms per request (figures
and how they were measured in bench/README.md).

Deliberately small: plain `http://` only, one request in flight per connection (no
pipelining), `Content-Length` or `Transfer-Encoding: chunked` responses only (anything
else fails loudly), no redirects, no cookies, no compression. Non-hot paths (readiness,
stock receipts, metrics) keep using httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from types import TracebackType
from urllib.parse import urlsplit

#: Response heads larger than this are refused (asyncio's default stream limit).
MAX_HEAD_BYTES = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_BODY_STATUSES = frozenset({204, 304})


class TransportError(Exception):
    """A request that got no complete response. `kind` uses httpx's exception names
    (ConnectError, ConnectTimeout, WriteError, ReadError, ReadTimeout,
    RemoteProtocolError), so the benchmarks' error counts by kind read as they did when
    the load went through httpx."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class _ProtocolViolation(Exception):
    """The response is not HTTP/1.1 this client can frame; becomes RemoteProtocolError."""


class _Connection:
    """One slot of the pool: a TCP connection, opened on first use and again whenever
    the previous one was closed (by the server, or after an error)."""

    __slots__ = ("reader", "writer", "opened")

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0  # connections this slot has opened so far

    def usable(self) -> bool:
        """Open, and not closed by the server while it was idle in the pool (a
        keep-alive timeout ends with a FIN the event loop has already seen)."""
        return (
            self.writer is not None
            and self.reader is not None
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def drop(self) -> None:
        """Forget the connection (after an error, a timeout, a cancellation or
        `Connection: close`): its state is unknown, so it is never reused."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Pool:
    """`size` keep-alive connections to one `http://host:port` server, handed out as
    slots: a request waits here for a free connection, then owns it until its response
    is read, so there is never more than one request on a connection.

    `reconnects` counts connections opened again on a slot that already had one (the
    server closed it, or an error dropped it). A connection the server closed while it
    sat idle is replaced before use; one that fails after the request was written is an
    error, never retried (a POST may have been applied). Timeouts cover a whole exchange:
    connect (if needed), write, and reading the complete response."""

    def __init__(self, url: str, size: int, *, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http://host:port URLs are supported, not {url!r}")
        if size < 1:
            raise ValueError(f"a pool needs at least one connection, not {size}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self.reconnects = 0
        self._host_header = parts.netloc.encode("ascii")
        self._post_heads: dict[str, bytes] = {}
        self._all = [_Connection() for _ in range(size)]
        self._slots: asyncio.Queue[_Connection] = asyncio.Queue()
        for connection in self._all:
            self._slots.put_nowait(connection)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        writers = [c.writer for c in self._all if c.writer is not None]
        for connection in self._all:
            connection.drop()
        for writer in writers:
            with contextlib.suppress(OSError):  # reset by the server: closed all the same
                await writer.wait_closed()

    def encode_post(self, path: str, body: bytes, content_type: str = "application/json") -> bytes:
        """The complete request as one buffer; the head up to Content-Length is built
        once per path."""
        head = self._post_heads.get(path)
        if head is None:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {self._host_header.decode()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: "
            ).encode("ascii")
            self._post_heads[path] = head
        return b"%s%d\r\n\r\n%s" % (head, len(body), body)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST a JSON `body`; returns (status, response body)."""
        return await self.request(self.encode_post(path, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one complete pre-encoded request on a free connection; returns (status,
        response body). Raises TransportError when no complete response arrived."""
        connection = await self._slots.get()
        try:
            return await self._exchange(connection, raw)
        finally:
            self._slots.put_nowait(connection)

    async def _exchange(self, connection: _Connection, raw: bytes) -> tuple[int, bytes]:
        stage = "Connect"
        try:
            async with asyncio.timeout(self.timeout):
                if not connection.usable():
                    await self._connect(connection)
                reader, writer = connection.reader, connection.writer
                assert reader is not None and writer is not None
                stage = "Write"
                writer.write(raw)
                await writer.drain()
                stage = "Read"
                status, body, keep_alive = await read_response(reader)
        except TimeoutError:  # before OSError: TimeoutError is one
            connection.drop()
            raise TransportError(f"{stage}Timeout", f"no response in {self.timeout:g}s") from None
        except OSError as error:
            connection.drop()
            raise TransportError(f"{stage}Error", str(error) or type(error).__name__) from None
        except asyncio.IncompleteReadError:
            connection.drop()
            raise TransportError(
                "RemoteProtocolError", "server closed the connection before a complete response"
            ) from None
        except (asyncio.LimitOverrunError, _ProtocolViolation) as error:
            connection.drop()
            raise TransportError("RemoteProtocolError", str(error)) from None
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            connection.drop()
            raise
        if not keep_alive:
            connection.drop()
        return status, body

    async def _connect(self, connection: _Connection) -> None:
        if connection.opened:
            self.reconnects += 1
        connection.drop()
        connection.reader, connection.writer = await asyncio.open_connection(
            self.host, self.port, limit=MAX_HEAD_BYTES
        )
        connection.opened += 1


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One response: (status, body, whether the connection may be reused). Interim 1xx
    responses are skipped. The body is framed by `Transfer-Encoding: chunked` or by
    `Content-Length`; a response with neither (a body delimited by the connection
    closing) is refused rather than guessed at."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise _ProtocolViolation(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        if status >= 200:
            break
        if status == 101:
            raise _ProtocolViolation("unexpected 101 Switching Protocols")
    keep_alive = version == b"HTTP/1.1"
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise _ProtocolViolation(f"malformed header line: {line[:80]!r}")
        name = name.lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length is not None and int(value) != length):
                raise _ProtocolViolation(f"bad Content-Length: {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            if value.strip().lower() != b"chunked":  # e.g. "gzip, chunked": not decoded here
                raise _ProtocolViolation(f"unsupported Transfer-Encoding: {value.strip()!r}")
            chunked = True
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
    if chunked:  # takes precedence over Content-Length (RFC 9112, 6.3)
        return status, await read_chunked(reader), keep_alive
    if status in _NO_BODY_STATUSES:
        return status, b"", keep_alive
    if length is None:
        raise _ProtocolViolation(
            f"HTTP {status} response without Content-Length or chunked encoding"
        )
    return status, await reader.readexactly(length), keep_alive


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A `Transfer-Encoding: chunked` body; chunk extensions and trailers are ignored."""
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        size = line[:-2].split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size):
            raise _ProtocolViolation(f"bad chunk size line: {line[:40]!r}")
        n = int(size, 16)
        if n == 0:
            break
        parts.append(await reader.readexactly(n))
        if await reader.readexactly(2) != b"\r\n":
            raise _ProtocolViolation("chunk not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailer fields, up to the empty line
    return b"".join(parts)
