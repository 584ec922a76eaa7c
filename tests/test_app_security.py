"""`fer.app.security` and `fer.app.owners` in-process: the string checks, the body counter and the
session bindings (the same, through a started server: tests/test_app_attacks.py)."""

from __future__ import annotations

import pytest

from fer.app import owners, security


@pytest.mark.parametrize(("path", "allowed"), [
    ("/srv/up/ab12/me.png", True),
    ("/srv/up/ab12/../ab12/me.png", True),
    ("/srv/up", False),
    ("/srv/up/../secret", False),
    ("/srv/upx/me.png", False),
    ("/srv/up/%2e%2e/secret", False),
    ("http://example.com/x.png", False),
    ("https:/example.com/x.png", False),
    ("//example.com/x.png", False),
    ("file:///srv/up/me.png", False),
    ("srv/up/me.png", False),
    ("/srv/up/me.png%00.jpg", False),
])
def test_file_urls_are_judged_on_the_string(path: str, allowed: bool) -> None:
    assert security.file_allowed(path, ["/srv/up"]) is allowed


def test_the_body_counter_sees_delimiters_split_across_chunks() -> None:
    counter = security._BodyCounter(10_000, b"xyz", max_parts=1)
    counter.add(b"--xyz\r\nfile one\r\n--x")  # one opening delimiter, then half of the next
    with pytest.raises(security._TooLarge, match="more than 1 file"):
        counter.add(b"yz\r\nfile two\r\n--xyz--")
    closing = security._BodyCounter(10_000, b"xyz", max_parts=1)
    closing.add(b"--xyz\r\none file\r\n--x")
    closing.add(b"yz--\r\n")  # the closing delimiter: still one file
    with pytest.raises(security._TooLarge, match="over 5 bytes"):
        security._BodyCounter(5, None, 0).add(b"123456")


def test_a_session_is_bound_to_the_cookie_it_first_came_with() -> None:
    bound = owners.Owners(capacity=3)
    assert bound.check("s1", "a" * 32) and bound.check("s1", "a" * 32)
    assert not bound.check("s1", "b" * 32) and not bound.check("s1", None)
    assert bound.check("api", None) and bound.check("api", "c" * 32)  # first used without one: unbound
    assert bound.check(None, None)  # a request naming no session
    for name in ("x", "y", "z"):  # the oldest binding is forgotten past the capacity
        bound.check(name, None)
    assert len(bound) == 3 and bound.check("s1", "b" * 32)


def test_cookies_and_where_sessions_are_named() -> None:
    assert owners.cookie_of(b"theme=dark; fer_browser=" + b"0f" * 16 + b"; x=1") == "0f" * 16
    assert owners.cookie_of(b"fer_browser=not-hex") is None and owners.cookie_of(b"") is None
    plain = owners.set_cookie_header({"scheme": "http"}, {}).decode()
    assert plain.startswith("fer_browser=") and "HttpOnly" in plain and "SameSite=Lax" in plain
    framed = owners.set_cookie_header({"scheme": "http"}, {b"x-forwarded-proto": b"https"}).decode()
    assert "Secure" in framed and "SameSite=None" in framed and "Partitioned" in framed
    assert owners.session_in_path({"path": "/gradio_api/heartbeat/abc123"}) == "abc123"
    assert owners.session_in_path({"path": "/gradio_api/stream/h2/run1/7/playlist.m3u8"}) == "h2"
    # A webcam stream's frames name their event in the path and their session in the body.
    assert owners.session_in_path({"path": "/gradio_api/stream/ev123", "query_string": b""}) is None
    assert owners.names_session_in_body("/gradio_api/stream/ev123")
    assert owners.session_in_path({"path": "/gradio_api/queue/data", "query_string": b"session_hash=h1"}) == "h1"
    assert owners.session_in_path({"path": "/config", "query_string": b""}) is None
    assert owners.names_session_in_body("/gradio_api/queue/join") and not owners.names_session_in_body("/upload")
