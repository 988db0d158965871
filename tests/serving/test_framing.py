"""The worker's framing agrees with gunicorn's parser on where a request ends.

Each case runs through :func:`flaskserve.serving.framing.frame_request` and through
gunicorn's own ``RequestParser`` reading the body to its end, both over the same bytes
from a source that would block when they run out (a socket): whole (and where the
request ends), incomplete, or invalid (and gunicorn's error). The cases are the kinds
of gunicorn's ``tests/requests/valid`` and ``invalid``, written anew, and the framing
the worker itself depends on (lengths, chunks, trailers, pipelined requests).
"""

from __future__ import annotations

from typing import Any

import gunicorn
import pytest
from gunicorn.config import Config
from gunicorn.http import errors
from gunicorn.http.parser import RequestParser

from flaskserve.serving.framing import ReplayingSocket, RequestFramer, chunk_size, frame_request
from flaskserve.serving.refusals import MALFORMED

WHOLE, INCOMPLETE, INVALID = "whole", "incomplete", "invalid"
Verdict = tuple[str, Any]  # (WHOLE, end) | (INCOMPLETE, None) | (INVALID, error class name)

POST = b"POST /p HTTP/1.1\r\nHost: example.com\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n"  # a pipelined request after one

#: the verdicts below are gunicorn 27's; 26.2 differs on seven cases (it refuses a CRLF
#: before the request line; takes a control byte in the target, a lone Transfer-Encoding:
#: gzip and a bad chunk extension; waits on a bare LF in an unended head or trailers, and
#: on an endless chunk-size line): there only the agreement is checked
GUNICORN = tuple(int(part) for part in gunicorn.__version__.split(".")[:2])

# request bytes, gunicorn settings, what both must say
CASES = [
    # --- whole requests, and where they end
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", {}, WHOLE, id="get"),
    pytest.param(b"GET /a?b=c HTTP/1.0\r\n\r\n", {}, WHOLE, id="get-http10-no-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT, {}, WHOLE, id="get-pipelined"),
    pytest.param(
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET", {}, WHOLE, id="get-with-length"
    ),
    pytest.param(POST + b"Content-Length: 0\r\n\r\n", {}, WHOLE, id="length-zero"),
    pytest.param(POST + b"Content-Length: 5\r\n\r\nhello", {}, WHOLE, id="length-exact"),
    pytest.param(POST + b"Content-Length: 5\r\n\r\nhello" + NEXT, {}, WHOLE, id="length-then-next"),
    pytest.param(b"PUT /x HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", {}, WHOLE, id="length-http10"),
    pytest.param(POST + b"Content-Length: 005\r\n\r\nhello", {}, WHOLE, id="length-leading-zeros"),
    pytest.param(POST + b"cOnTeNt-LeNgTh:5\r\n\r\nhello", {}, WHOLE, id="header-any-case"),
    pytest.param(
        POST + b"Content-Length: \t5 \t\r\n\r\nhello", {}, WHOLE, id="header-htab-trimmed"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n", {}, WHOLE, id="header-obs-text"),
    pytest.param(
        b"GET / HTTP/1.1\r\nX!#$%&'*+-.^`|~: v\r\n\r\n", {}, WHOLE, id="header-special-name"
    ),
    pytest.param(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", {}, WHOLE, id="one-crlf-before"),
    pytest.param(
        b"GET http://example.com/a HTTP/1.1\r\nHost: e\r\n\r\n", {}, WHOLE, id="target-absolute"
    ),
    pytest.param(
        b"GET http://[::1]:8000/ HTTP/1.1\r\nHost: e\r\n\r\n", {}, WHOLE, id="target-ipv6"
    ),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: e\r\n\r\n", {}, WHOLE, id="target-asterisk-options"),
    pytest.param(
        b"CONNECT e.com:443 HTTP/1.1\r\nHost: e\r\n\r\n", {}, WHOLE, id="target-authority-connect"
    ),
    pytest.param(b"GET ///a//b HTTP/1.1\r\n\r\n", {}, WHOLE, id="slashes-kept"),
    pytest.param(
        POST + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        {},
        WHOLE,
        id="expect-continue-body-sent",
    ),
    pytest.param(CHUNKED + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", {}, WHOLE, id="chunked"),
    pytest.param(CHUNKED + b"5\r\nhello\r\n0\r\n\r\n" + NEXT, {}, WHOLE, id="chunked-then-next"),
    pytest.param(CHUNKED + b"0\r\n\r\n", {}, WHOLE, id="chunked-empty"),
    pytest.param(CHUNKED + b"A\r\n0123456789\r\n0\r\n\r\n", {}, WHOLE, id="chunked-upper-hex"),
    pytest.param(CHUNKED + b"0005\r\nhello\r\n000\r\n\r\n", {}, WHOLE, id="chunked-leading-zeros"),
    pytest.param(
        CHUNKED + b"5;a=b;c\r\nhello\r\n0;last\r\n\r\n", {}, WHOLE, id="chunked-extension"
    ),
    pytest.param(
        CHUNKED + b'5 ; n="v;\\"x"\r\nhello\r\n0\r\n\r\n', {}, WHOLE, id="chunked-ext-quoted"
    ),
    pytest.param(
        CHUNKED + b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n", {}, WHOLE, id="chunked-trailers"
    ),
    pytest.param(
        CHUNKED + b"1\r\na\r\n0\r\nX: 1\r\n\r\n" + NEXT, {}, WHOLE, id="chunked-trailers-next"
    ),
    pytest.param(CHUNKED + b"4\r\n\r\n\r\n\r\n0\r\n\r\n", {}, WHOLE, id="chunked-crlf-in-data"),
    pytest.param(
        POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        {},
        WHOLE,
        id="gzip-then-chunked",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {},
        WHOLE,
        id="te-split-lines",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        {},
        WHOLE,
        id="te-identity-chunked",
    ),
    pytest.param(
        b"-BLARGH /foo HTTP/1.1\r\n\r\n",
        {"permit_unconventional_http_method": True},
        WHOLE,
        id="unconventional-method",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nLong: one\r\n two\r\n\r\n",
        {"permit_obsolete_folding": True},
        WHOLE,
        id="obs-fold-permitted",
    ),
    pytest.param(
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.0\r\n\r\n",
        {"proxy_protocol": "v1", "proxy_allow_ips": "*"},
        WHOLE,
        id="proxy-v1",
    ),
    # --- incomplete: a socket would block, waiting for more
    pytest.param(b"", {}, INCOMPLETE, id="nothing"),
    pytest.param(b"GET /foo/bar HTTP/1.0\r\nbaz", {}, INCOMPLETE, id="request-line-unended"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", {}, INCOMPLETE, id="head-unended"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r", {}, INCOMPLETE, id="head-one-cr"),
    pytest.param(b"\r", {}, INCOMPLETE, id="lone-cr"),
    pytest.param(POST + b"Content-Length: 5\r\n\r\nhell", {}, INCOMPLETE, id="length-short"),
    pytest.param(
        POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        {},
        INCOMPLETE,
        id="expect-continue-waits",
    ),
    pytest.param(CHUNKED, {}, INCOMPLETE, id="chunked-no-body-yet"),
    pytest.param(CHUNKED + b"5", {}, INCOMPLETE, id="chunked-size-unended"),
    pytest.param(CHUNKED + b"5\r\nhel", {}, INCOMPLETE, id="chunked-data-short"),
    pytest.param(CHUNKED + b"5\r\nhello\r", {}, INCOMPLETE, id="chunked-data-crlf-short"),
    pytest.param(CHUNKED + b"5\r\nhellox", {}, INCOMPLETE, id="chunked-data-one-wrong-byte"),
    pytest.param(CHUNKED + b"5\r\nhello\r\n", {}, INCOMPLETE, id="chunked-no-last-chunk"),
    pytest.param(CHUNKED + b"5\r\nhello\r\n0\r\n", {}, INCOMPLETE, id="chunked-no-final-crlf"),
    pytest.param(CHUNKED + b"0\r\n\r", {}, INCOMPLETE, id="chunked-final-cr"),
    pytest.param(CHUNKED + b"0\r\nX-Sum: 1\r\n", {}, INCOMPLETE, id="chunked-trailers-unended"),
    pytest.param(CHUNKED + b"ffffffffffffffff\r\nabc", {}, INCOMPLETE, id="chunked-huge-size"),
    # --- invalid request lines and methods
    pytest.param(b"GET HTTP/1.1\r\n\r\n", {}, INVALID, id="no-target"),
    pytest.param(b"GET\n/\nHTTP/1.1\r\n\r\n", {}, INVALID, id="bare-lf-line"),
    pytest.param(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", {}, INVALID, id="two-crlf-before"),
    pytest.param(b"bla:rgh /foo HTTP/1.1\r\n\r\n", {}, INVALID, id="method-colon"),
    pytest.param(b"-bl /foo HTTP/1.1\r\n\r\n", {}, INVALID, id="method-dash"),
    pytest.param(b"GET\0 /foo HTTP/1.1\r\n\r\n", {}, INVALID, id="method-nul"),
    pytest.param(
        b"GET\xc3\x9f /g HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        {},
        INVALID,
        id="method-non-ascii",
    ),
    pytest.param(b"get / HTTP/1.1\r\n\r\n", {}, INVALID, id="method-lowercase"),
    pytest.param(b"GET /foo FTP/1.1\r\n\r\n", {}, INVALID, id="version-ftp"),
    pytest.param(b"GET /test HTTP/111\r\nHost: x\r\n\r\n", {}, INVALID, id="version-111"),
    pytest.param(b"GET /foo HTTP/0.99\r\n\r\n", {}, INVALID, id="version-0.99"),
    pytest.param(b"GET /foo HTTP/2.0\r\n\r\n", {}, INVALID, id="version-2.0"),
    pytest.param(b"GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", {}, INVALID, id="version-trailing"),
    pytest.param(b"PUT s://]ufd/: HTTP/1.1\r\n\r\n", {}, INVALID, id="target-bad-uri"),
    pytest.param(b"GET * HTTP/1.1\r\nHost: e\r\n\r\n", {}, INVALID, id="target-asterisk-get"),
    pytest.param(
        b"GET e.com:443 HTTP/1.1\r\nHost: e\r\n\r\n", {}, INVALID, id="target-authority-get"
    ),
    pytest.param(b"GET foo/bar HTTP/1.1\r\nHost: e\r\n\r\n", {}, INVALID, id="target-relative"),
    pytest.param(b"GET /a\x7fb HTTP/1.1\r\nHost: e\r\n\r\n", {}, INVALID, id="target-control"),
    pytest.param(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", {}, INVALID, id="line-too-long"),
    pytest.param(b"GET /" + b"a" * 5000, {}, INVALID, id="line-too-long-unended"),
    pytest.param(
        b"GET /abcdefghij HTTP/1.1\r\n\r\n",
        {"limit_request_line": 10},
        INVALID,
        id="line-over-set-limit",
    ),
    # --- invalid headers
    pytest.param(b"GET /foo HTTP/1.1\r\nba\0z: bar\r\n\r\n", {}, INVALID, id="header-nul-in-name"),
    pytest.param(
        b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\nxyz",
        {},
        INVALID,
        id="header-space-before-colon",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", {}, INVALID, id="header-no-colon"),
    pytest.param(
        b"GET / HTTP/1.1\r\nContent-Length\xc3\x9f: 3\r\n\r\nabc",
        {},
        INVALID,
        id="header-non-ascii-name",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nX-Value: a\x07b\r\n\r\n", {}, INVALID, id="header-bel"),
    pytest.param(b"GET / HTTP/1.1\r\nX-Value: a\x7fb\r\n\r\n", {}, INVALID, id="header-del"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nNewline: a\nContent-Length: 26\r\n\r\n",
        {},
        INVALID,
        id="header-bare-lf",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\nMore", {}, INVALID, id="header-bare-lf-unended"),
    pytest.param(
        b"GET / HTTP/1.1\r\nLong: one\r\n two\r\nHost: x\r\n\r\n", {}, INVALID, id="obs-fold"
    ),
    pytest.param(
        b"GET / HTTP/1.0\r\nContent_Length: 7\r\n\r\n",
        {"header_map": "refuse"},
        INVALID,
        id="underscore-header-refused",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {}, INVALID, id="host-twice"),
    pytest.param(
        b"GET / HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n",
        {},
        INVALID,
        id="content-type-twice",
    ),
    pytest.param(
        POST + b"Expect: 200-ok\r\nContent-Length: 0\r\n\r\n", {}, INVALID, id="expect-other"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n",
        {"forwarded_allow_ips": "*"},
        INVALID,
        id="scheme-headers-disagree",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        {"limit_request_field_size": 10},
        INVALID,
        id="field-over-limit",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        {"limit_request_fields": 2},
        INVALID,
        id="fields-over-limit",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nX: " + b"y" * 9000 + b"\r\n\r\n", {}, INVALID, id="field-over-default"
    ),
    pytest.param(
        b"PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n",
        {"proxy_protocol": "v1", "proxy_allow_ips": "*"},
        INVALID,
        id="proxy-line-bad",
    ),
    pytest.param(
        b"PROXY TCP4 192.168.0.1 192.168.0.11 1 2\r\nGET / HTTP/1.0\r\n\r\n",
        {"proxy_protocol": "v1", "proxy_allow_ips": "10.0.0.1"},
        INVALID,
        id="proxy-not-allowed",
    ),
    # --- invalid framing: lengths and transfer codings
    pytest.param(
        b"PUT / HTTP/1.0\r\nContent-Length: -1\r\n\r\n", {}, INVALID, id="length-negative"
    ),
    pytest.param(
        b"GET / HTTP/1.0\r\nContent-Length: -0\r\n\r\n", {}, INVALID, id="length-minus-zero"
    ),
    pytest.param(b"GET / HTTP/1.0\r\nContent-Length: +1\r\n\r\nx", {}, INVALID, id="length-plus"),
    pytest.param(
        b"GET / HTTP/1.0\r\nContent-Length: 0_1\r\n\r\n", {}, INVALID, id="length-underscore"
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\nContent-Length: bla-bla\r\n\r\n", {}, INVALID, id="length-words"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nContent-Length: 3 1\r\n\r\nxyz", {}, INVALID, id="length-two-numbers"
    ),
    pytest.param(POST + b"Content-Length: 5, 5\r\n\r\nhello", {}, INVALID, id="length-list"),
    pytest.param(
        POST + b"Content-Length: 3\r\nContent-Length: 2\r\n\r\nxyz", {}, INVALID, id="length-twice"
    ),
    pytest.param(
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + NEXT,
        {},
        INVALID,
        id="length-and-chunked",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        {},
        INVALID,
        id="chunked-and-length",
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {},
        INVALID,
        id="chunked-http10",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        {},
        INVALID,
        id="chunked-twice",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {},
        INVALID,
        id="chunked-twice-lines",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        {},
        INVALID,
        id="chunked-not-last",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        {},
        INVALID,
        id="chunked-then-identity",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nhi",
        {},
        INVALID,
        id="te-gzip-only",
    ),
    pytest.param(POST + b"Transfer-Encoding: foo\r\n\r\n", {}, INVALID, id="te-unknown"),
    pytest.param(
        POST + b"Content-Length: 12\r\nTransfer-Encoding: \tchunked\r\n\r\n",
        {},
        INVALID,
        id="te-htab-prefixed",
    ),
    # --- invalid chunked bodies
    pytest.param(CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n", {}, INVALID, id="chunk-size-zz"),
    pytest.param(
        CHUNKED + b"5\r\nhello\r\n6_0\r\n world\r\n0\r\n\r\n",
        {},
        INVALID,
        id="chunk-size-underscore",
    ),
    pytest.param(CHUNKED + b"5\r\nhello\r\n0 \r\n\r\n", {}, INVALID, id="chunk-size-space-after"),
    pytest.param(CHUNKED + b"5\r\nhello\r\n 0\r\n\r\n", {}, INVALID, id="chunk-size-space-before"),
    pytest.param(CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-size-minus"),
    pytest.param(CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-size-plus"),
    pytest.param(CHUNKED + b"\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-size-empty"),
    pytest.param(
        CHUNKED + b" ;foo=bar\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-size-only-ext"
    ),
    pytest.param(CHUNKED + b"5\n;\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-size-bare-lf"),
    pytest.param(
        CHUNKED + b"5;ext=val\rue\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-ext-bare-cr"
    ),
    pytest.param(
        CHUNKED + b"5;a=b c\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-ext-space-in-value"
    ),
    pytest.param(CHUNKED + b"3\r\nhello\r\n0\r\n\r\n", {}, INVALID, id="chunk-data-overrun"),
    pytest.param(CHUNKED + b"5;" + b"a" * 9000, {}, INVALID, id="chunk-size-line-endless"),
    pytest.param(
        CHUNKED + b"5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n",
        {},
        INVALID,
        id="trailer-content-length",
    ),
    pytest.param(CHUNKED + b"0\r\nHost: evil.example.com\r\n\r\n", {}, INVALID, id="trailer-host"),
    pytest.param(
        CHUNKED + b"0\r\nTransfer-Encoding: chunked\r\n\r\n", {}, INVALID, id="trailer-te"
    ),
    pytest.param(CHUNKED + b"0\r\nBad Name: 1\r\n\r\n", {}, INVALID, id="trailer-bad-name"),
    pytest.param(CHUNKED + b"0\r\nX: 1\nY: 2\n\n", {}, INVALID, id="trailer-bare-lf"),
    pytest.param(
        CHUNKED + b"0\r\n" + b"X: 1\r\n" * 300,
        {"limit_request_fields": 4, "limit_request_field_size": 20},
        INVALID,
        id="trailers-over-limit",
    ),
]


class _WouldBlock(Exception):
    pass


class _Socket:
    """*data* to read, *step* bytes a read at most; past it, a read would block."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self.offset = data, step, 0

    def recv(self, size: int) -> bytes:
        if self.offset >= len(self._data):
            raise _WouldBlock
        chunk = self._data[self.offset : self.offset + min(size, self._step)]
        self.offset += len(chunk)
        return chunk


def _config(settings: dict[str, Any]) -> Config:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def gunicorn_verdict(data: bytes, cfg: Config, step: int = 1 << 30) -> Verdict:
    """What gunicorn's parser says, reading the head and then the whole body."""
    source = _Socket(data, step)
    parser = RequestParser(cfg, source, ("127.0.0.1", 0))
    try:
        request = next(parser)
        while request.body.read(8192):
            pass
    except _WouldBlock:
        return INCOMPLETE, None
    except MALFORMED as e:
        return INVALID, type(e).__name__
    return WHOLE, source.offset - len(parser.unreader.take_buffered())


def framing_verdict(data: bytes, cfg: Config) -> Verdict:
    try:
        end = frame_request(data, cfg)
    except MALFORMED as e:
        return INVALID, type(e).__name__
    return (INCOMPLETE, None) if end is None else (WHOLE, end)


def arriving_verdict(data: bytes, cfg: Config, step: int) -> Verdict:
    """The framing as the worker runs it: the bytes arrive *step* at a time."""
    source = ReplayingSocket(None, data[:step])
    framer = RequestFramer(cfg, source, ("127.0.0.1", 0))
    fresh, at = data[:step], step
    try:
        while (end := framer.advance(fresh, last_try=at >= len(data))) is None:
            if at >= len(data):
                return INCOMPLETE, None
            fresh, at = data[at : at + step], at + step
            source.feed(fresh)
    except MALFORMED as e:
        return INVALID, type(e).__name__
    return WHOLE, end


@pytest.mark.parametrize(("data", "settings", "expected"), CASES)
def test_framing_agrees_with_gunicorn(data: bytes, settings: dict[str, Any], expected: str) -> None:
    cfg = _config(settings)
    verdict = gunicorn_verdict(data, cfg)
    if GUNICORN >= (27,):  # the table says what it means to test
        assert verdict[0] == expected
    assert framing_verdict(data, cfg) == verdict
    assert gunicorn_verdict(data, cfg, step=1) == verdict  # gunicorn reads it alike byte by byte
    if verdict[0] == WHOLE:
        assert data[verdict[1] :] in (b"", NEXT, b"GET")  # only a next request is left over


@pytest.mark.parametrize(("data", "settings", "expected"), CASES)
def test_every_prefix_agrees_with_gunicorn(
    data: bytes, settings: dict[str, Any], expected: str
) -> None:
    cfg = _config(settings)
    for size in [*range(min(len(data), 200)), len(data)]:
        prefix = data[:size]
        framed, parsed = framing_verdict(prefix, cfg), gunicorn_verdict(prefix, cfg)
        assert framed[0] == parsed[0], (prefix, framed, parsed)
        assert framed[1] == parsed[1] or framed[0] == INVALID, (prefix, framed, parsed)


@pytest.mark.parametrize("step", [1, 7, 64])
@pytest.mark.parametrize(("data", "settings", "expected"), CASES)
def test_bytes_arriving_in_pieces_frame_alike(
    data: bytes, settings: dict[str, Any], expected: str, step: int
) -> None:
    cfg = _config(settings)
    one_read, pieces = framing_verdict(data, cfg), arriving_verdict(data, cfg, step)
    assert pieces[0] == one_read[0]
    assert pieces[1] == one_read[1] or one_read[0] == INVALID


@pytest.mark.parametrize(
    ("line", "size"),
    [(b"0", 0), (b"1a", 26), (b"FF", 255), (b"5;a=b", 5), (b"5 \t;a", 5), (b"000", 0)],
)
def test_chunk_sizes(line: bytes, size: int) -> None:
    assert chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b" 5", b"5 ", b"-5", b"0x5", b"5\n", b";a", b"g"])
def test_malformed_chunk_sizes(line: bytes) -> None:
    with pytest.raises(errors.InvalidChunkSize):
        chunk_size(line)
