"""Fetching http(s) images: a total time-out, a byte cap, a bounded number of redirects,
each re-checked, and the address guard (`bgr_core.addresses`) applied before and after
connecting (DNS rebinding does not get round it); environment proxies are not used.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .addresses import refused_address
from .errors import BGRError, InvalidInput, RequestFailed
from .limits import ImageLimits, show

__all__ = ["fetch_url", "URL_SCHEMES"]

URL_SCHEMES = ("http", "https")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows at most `max_redirects` redirects; each target is checked like the first URL."""

    max_repeats = max_redirections = 100  # our own count below is the limit

    def __init__(self, param: str, limits: ImageLimits):
        self.param, self.limits = param, limits
        self.count = 0

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:
            self.count += 1
            if self.count > self.limits.max_redirects:
                raise RequestFailed(f"`{self.param}`: more than {self.limits.max_redirects} redirects")
            try:
                target = urllib.parse.urljoin(req.full_url, location)
            except ValueError:
                raise InvalidInput(f"`{self.param}`: the server redirected to an invalid URL") from None
            _check_url_target(target, self.param, self.limits)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _private_refused(param: str, host: str) -> InvalidInput:
    return InvalidInput(
        f"`{param}`: host '{show(host)}' resolves to a private, loopback or link-local address, "
        "which is refused (allow_private=True permits it)"
    )


def _check_url_target(url: str, param: str, limits: ImageLimits) -> None:
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidInput(f"`{param}`: URL contains spaces or control characters")
    try:
        parsed = urllib.parse.urlparse(url)
        port = parsed.port
        host = parsed.hostname
    except ValueError as err:  # bad port, unbalanced brackets
        raise InvalidInput(f"`{param}` is not a valid URL ({err})") from None
    if parsed.scheme.lower() not in URL_SCHEMES:
        raise InvalidInput(f"`{param}`: only http(s) URLs can be fetched, not '{show(parsed.scheme, 20)}'")
    if not host:
        raise InvalidInput(f"`{param}`: URL has no host")
    if limits.allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as err:
        raise RequestFailed(f"`{param}`: cannot resolve host '{show(host)}' ({err})") from None
    for info in infos:
        if refused_address(info[4][0]):
            raise _private_refused(param, host)


class _Guard:
    """One fetch's watchdog: checks the address of every connection actually made
    (so a DNS answer that changes between check and connect does not get round
    `allow_private`), and shuts every socket down when the total time is up."""

    def __init__(self, param: str, limits: ImageLimits):
        self.param, self.limits = param, limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.01)

    def connect(self, address, timeout=None, source_address=None, *args, **kwargs):
        if not isinstance(timeout, (int, float)):
            timeout = self.remaining()
        sock = socket.create_connection(
            address, min(timeout, self.remaining()), source_address, *args, **kwargs
        )
        try:
            with self._lock:
                if self.expired:
                    raise TimeoutError("timed out")
                self._socks.append(sock)
            if not self.limits.allow_private and refused_address(sock.getpeername()[0]):
                raise _private_refused(self.param, str(address[0]))
        except BaseException:
            sock.close()
            raise
        return sock

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _guarded_opener(guard: _Guard, param: str, limits: ImageLimits) -> urllib.request.OpenerDirector:
    class Conn(http.client.HTTPConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = guard.connect

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Conn, req)

    handlers: list[Any] = [urllib.request.ProxyHandler({}), HTTPHandler(), _CheckedRedirects(param, limits)]
    if hasattr(http.client, "HTTPSConnection"):

        class ConnS(http.client.HTTPSConnection):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._create_connection = guard.connect

        class HTTPSHandler(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(ConnS, req, context=self._context)

        handlers.append(HTTPSHandler())
    return urllib.request.build_opener(*handlers)


def fetch_url(url: str, param: str, limits: ImageLimits) -> bytes:
    """Download an http(s) URL within a total time-out and a byte cap, following at
    most `max_redirects` redirects, each re-checked, and refusing private addresses
    (checked before and after connecting) unless `allow_private`."""
    if not limits.allow_network:
        raise InvalidInput(
            f"`{param}`: http(s) URLs are refused because network access is off "
            "(Pipeline(allow_network=False) was set)"
        )
    _check_url_target(url, param, limits)
    guard = _Guard(param, limits)
    timer = threading.Timer(limits.timeout_s, guard.expire)
    timer.daemon = True
    timer.start()
    try:
        opener = _guarded_opener(guard, param, limits)
        request = urllib.request.Request(url, headers={"User-Agent": "bgr_core", "Accept-Encoding": "identity"})
        with opener.open(request, timeout=limits.timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length and length.strip().isdigit() and int(length) > limits.max_bytes:
                raise InvalidInput(f"`{param}`: the download is larger than the limit of {limits.max_bytes} bytes")
            chunks, total = [], 0
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > limits.max_bytes:
                    raise InvalidInput(
                        f"`{param}`: the download is larger than the limit of {limits.max_bytes} bytes"
                    )
                chunks.append(chunk)
                if guard.expired:
                    break
        if guard.expired:
            raise _timed_out(param, limits)
        return b"".join(chunks)
    except BGRError:
        raise
    except urllib.error.HTTPError as err:
        raise RequestFailed(f"`{param}`: the server answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        if guard.expired or isinstance(getattr(err, "reason", err), (TimeoutError, socket.timeout)):
            raise _timed_out(param, limits) from None
        reason = getattr(err, "reason", None) or type(err).__name__
        raise RequestFailed(f"`{param}`: URL not reachable ({show(str(reason))})") from None
    finally:
        timer.cancel()


def _timed_out(param: str, limits: ImageLimits) -> RequestFailed:
    return RequestFailed(f"`{param}`: URL not reachable (timed out after {limits.timeout_s:g} s)")
