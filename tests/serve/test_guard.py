"""What every request passes (`jaxcolor.serve.guard`): the token, the Host check, the
security headers, no CORS; and the limits (413) before any decoding."""

from __future__ import annotations

import time

import pytest

from jaxcolor.errors import UsageError
from jaxcolor.serve import guard
from tests.serve.support import encoded, gray_photo, png_declaring, post, refused

TOKEN = "s3cret-token-for-tests"


def test_with_a_token_every_api_call_needs_it_and_the_page_does_not(make_client):
    client = make_client(token=TOKEN)
    for call in (lambda h: client.get("/api/health", headers=h),
                 lambda h: client.post("/api/colorize", headers=h,
                                       files={"image": ("a.png", encoded(gray_photo(40, 30)))})):
        missing = call({})
        refused(missing, 401, "missing token")
        assert missing.headers["www-authenticate"].startswith("Bearer")
        refused(call({"Authorization": "Bearer not-the-token"}), 401, "wrong token")
        refused(call({"Authorization": f"Basic {TOKEN}"}), 401)
        assert call({"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert call({"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert client.get("/").status_code == 200  # the page holds no secret
    assert client.get("/static/studio.js").status_code == 200


def test_without_a_token_loopback_answers_anyone_on_this_machine(client):
    assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize("host, token, needs", [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
    ("0.0.0.0", None, True), ("192.168.1.20", None, True), ("myhost", None, True),
])
def test_a_bind_beyond_loopback_always_gets_a_token(host, token, needs):
    made = guard.resolve_token(host, token)
    assert (made is not None) == needs
    if needs:
        assert len(made) >= 24 and made != guard.resolve_token(host, token)  # random
    assert guard.resolve_token(host, TOKEN) == TOKEN


@pytest.mark.parametrize("token", ["short", "has space in it", "tab\there-and-more"])
def test_a_weak_or_odd_token_is_a_usage_error(token):
    with pytest.raises(UsageError, match="--token"):
        guard.resolve_token("0.0.0.0", token)


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("localhost", True),
    ("[::1]:8080", True), ("attacker.example:8080", False), ("127.0.0.1.nip.io", False),
    ("", False)])
def test_on_loopback_the_host_header_must_name_this_machine(client, host, allowed):
    response = client.get("/api/health", headers={"host": host})
    if allowed:
        assert response.status_code == 200
    else:
        refused(response, 400, "unknown Host header")


def test_a_page_of_another_origin_is_refused_and_the_studios_own_is_not(client):
    photo = {"image": ("a.png", encoded(gray_photo(40, 30)))}
    refused(client.post("/api/colorize", files=photo, headers={
        "Origin": "https://elsewhere.example"}), 403, "another origin")
    own = client.post("/api/colorize", files=photo, headers={
        "Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"})
    assert own.status_code == 200
    assert client.post("/api/colorize", files=photo).status_code == 200  # no Origin: curl


def test_beyond_loopback_the_token_guards_any_host_name(make_client):
    client = make_client(host="0.0.0.0", token=TOKEN)
    response = client.get("/api/health", headers={"host": "studio.lan:8080",
                                                  "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_every_answer_carries_the_security_headers_and_no_cors(client):
    for response in (client.get("/"), client.get("/api/health", headers={
            "Origin": "https://elsewhere.example"}), client.get("/api/none"),
            client.options("/api/colorize", headers={
                "Origin": "https://elsewhere.example",
                "Access-Control-Request-Method": "POST"})):
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert not [h for h in response.headers if h.startswith("access-control-")]


# ---- limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("side", [20_000, 100_000])
def test_a_bomb_header_is_413_without_decoding(make_client, side):
    client = make_client(max_pixels=10_000_000)
    bomb = png_declaring(side, side)
    assert len(bomb) < 50_000
    started = time.perf_counter()
    refused(post(client, bomb, name="bomb.png"), 413, "bomb.png", "pixels")
    assert time.perf_counter() - started < 5  # refused unread, not decoded


def test_a_photo_over_the_pixel_limit_is_413(make_client):
    client = make_client(max_pixels=2000)
    refused(post(client, encoded(gray_photo(60, 40))), 413, "60x40 = 2400 pixels",
            "limit of 2000")
    assert post(client, encoded(gray_photo(50, 40))).status_code == 200


def test_an_upload_over_the_byte_limit_is_413(make_client):
    client = make_client(max_bytes=4000)
    noise = encoded(gray_photo(300, 200) ^ 0x55)
    assert len(noise) > 4000
    refused(post(client, noise), 413, "limit of 4000")


def test_the_byte_limit_holds_without_content_length(make_client):
    """A chunked body has no Content-Length: the bytes are counted as they arrive."""
    client = make_client(max_bytes=4000)
    boundary = "jaxcolor-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(100):
            yield b"\x00" * 1000

    response = client.post("/api/colorize", content=body(), headers={
        "content-type": f"multipart/form-data; boundary={boundary}"})
    refused(response, 413, "over the limit of 4000 bytes")
