"""Security of both web apps (labelling app, model server): Host names (DNS rebinding), the token's cookie and
its place, cross-site writes, every route behind the secret, and path traversal through every route that takes
a name or an id. Routes are enumerated from `app.routes`, so a route added later is covered too."""

from __future__ import annotations

import ast
import hmac
import http.client
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from picsift.deploy.server import ServerSettings
from picsift.deploy.server import create_app as create_server
from picsift.label_app import LabelSettings
from picsift.label_app import create_app as create_label_app
from picsift.store import Workspace
from picsift.store.feedback import Feedback
from picsift.store.feedback_store import FeedbackStore
from picsift.web.hosts import allowed_host_names, host_name
from support.deploy import LiveServer
from support.label import app_client, make_workspace

EVIL = "evil.example"


@pytest.fixture
def ws(tmp_path: Path):
    w = make_workspace(tmp_path, per_class=4, labelled_per_class=1)
    yield w
    w.close()


def server_client(tmp_path: Path, **settings: object) -> TestClient:
    """The model server's routes and middleware, without loading a model (no lifespan): enough for every check
    made before a route runs."""
    app = create_server(ServerSettings(bundle=tmp_path / "bundle", workspace=tmp_path / "sws", **settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://127.0.0.1:8000")


def routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, path template) of every route the app answers, routers included by `include_router` too (newer
    FastAPI versions keep those as one entry of `app.routes` holding the router's routes)."""

    def flat(entries):  # type: ignore[no-untyped-def]
        for r in entries:
            if hasattr(r, "effective_route_contexts"):
                yield from flat(r.effective_route_contexts())
            elif hasattr(r, "path"):
                yield r
            else:
                yield from flat(r.routes)

    out = []
    for r in flat(app.routes):
        for m in sorted(getattr(r, "methods", None) or {"GET"}):
            if m != "HEAD":
                out.append((m, r.path))
    return out


def filled(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", lambda _: value, path)


# ---- Host header (DNS rebinding) -----------------------------------------------------------------------------


def test_host_names_are_parsed_without_port_and_case() -> None:
    assert host_name("LocalHost:8765") == "localhost"
    assert host_name("[::1]:8765") == "::1" and host_name("[::1]") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("evil.example:80x") is None and host_name("") is None and host_name("[::1]junk") is None
    assert allowed_host_names("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_host_names("127.0.0.1", ["*"]) is None
    assert "10.1.2.3" in (allowed_host_names("10.1.2.3") or set())


def test_label_app_refuses_a_rebound_host_name(ws: Workspace) -> None:
    image = ws.catalog.images(labeled=False)[0]
    with app_client(ws) as c:
        evil = {"Host": EVIL}
        summary = c.get("/api/summary", headers=evil)
        assert summary.status_code == 421 and summary.json()["error"] == "host_not_allowed"
        assert "--allowed-host evil.example" in summary.json()["detail"]
        assert c.get(f"/api/images/{image.id}/full", headers=evil).status_code == 421
        assert c.get("/", headers=evil).status_code == 421
        r = c.post("/api/labels", json={"image_ids": [image.id], "label": "0"}, headers=evil)
        assert r.status_code == 421
        assert ws.catalog.image(image.id).label is None
        for host in ("localhost", "localhost:8765", "127.0.0.1:8765", "[::1]:8765", "LOCALHOST"):
            assert c.get("/api/summary", headers={"Host": host}).status_code == 200, host
    with app_client(ws, allowed_hosts=("labeller.lan",)) as c:
        assert c.get("/api/summary", headers={"Host": "labeller.lan:8765"}).status_code == 200
        assert c.get("/api/summary", headers=evil).status_code == 421


def test_label_app_bound_beyond_loopback_answers_its_address_and_the_allow_list(ws: Workspace) -> None:
    with app_client(ws, token="s3cret", host="10.1.2.3", allowed_hosts=("labeller.lan",)) as c:
        auth = {"X-Picsift-Token": "s3cret"}
        assert c.get("/api/summary", headers={**auth, "Host": "10.1.2.3:8765"}).status_code == 200
        assert c.get("/api/summary", headers={**auth, "Host": "labeller.lan"}).status_code == 200
        assert c.get("/api/summary", headers={**auth, "Host": EVIL}).status_code == 421


def test_model_server_without_key_refuses_a_rebound_host_name(tmp_path: Path) -> None:
    c = server_client(tmp_path)
    assert c.get("/v1/model", headers={"Host": EVIL}).status_code == 421
    assert c.post("/v1/admin/reload", headers={"Host": EVIL}).status_code == 421
    assert c.get("/metrics", headers={"Host": EVIL}).status_code == 421
    assert c.get("/healthz", headers={"Host": EVIL}).status_code == 200  # liveness tells nothing
    assert c.get("/metrics", headers={"Host": "localhost:8000"}).status_code == 200
    allowed = server_client(tmp_path, allowed_hosts=("models.lan",))
    assert allowed.get("/metrics", headers={"Host": "models.lan"}).status_code == 200
    # With a key every route needs it anyway: any host name reaches the key check.
    keyed = server_client(tmp_path, api_key="k3y")
    assert keyed.get("/metrics", headers={"Host": EVIL}).status_code == 401
    assert keyed.get("/metrics", headers={"Host": EVIL, "X-API-Key": "k3y"}).status_code == 200
    # A page of another site cannot post to a key-less server on localhost (CSRF): browsers add Origin.
    for origin in ("http://evil.example", "null"):
        r = c.post("/v1/feedback", data={"label": "cat"}, headers={"Host": "localhost:8000", "Origin": origin})
        assert r.status_code == 403 and r.json()["error"] == "cross_origin", origin
        assert c.post("/v1/admin/reload", headers={"Origin": origin}).status_code == 403
    same = c.post("/v1/admin/reload", headers={"Origin": "http://127.0.0.1:8000"})
    assert same.status_code == 409 and same.json()["error"] == "reload_failed"  # reached the route
    assert not (tmp_path / "sws" / "catalog.sqlite").exists()  # the forged feedback wrote nothing
    # Settings travel to worker processes as JSON, allow-list included.
    settings = ServerSettings(bundle=tmp_path / "b", host="0.0.0.0", allowed_hosts=("a.lan", "b.lan"))
    assert ServerSettings.from_json(settings.to_json()) == settings


# ---- the token: cookie, URL, cross-site writes -----------------------------------------------------------------


def test_token_in_the_url_only_on_the_page_which_moves_it_into_a_strict_cookie(ws: Workspace) -> None:
    with app_client(ws, token="s3cret") as c:
        assert c.get("/api/summary", params={"token": "s3cret"}).status_code == 401
        assert c.get("/api/images/1/thumb", params={"token": "s3cret"}).status_code == 401
        page = c.get("/", params={"token": "s3cret", "view": "unlabeled"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/?view=unlabeled"
        cookie = page.headers["set-cookie"].lower()
        assert "picsift_token_80=s3cret" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/summary").status_code == 200  # the cookie, now
    with app_client(ws, token="s3cret") as c:
        wrong = c.get("/", params={"token": "nope"}, follow_redirects=False)
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


def test_two_label_apps_on_one_host_keep_a_token_cookie_each(tmp_path: Path) -> None:
    """A browser keeps cookies by host name, not port: one cookie jar (one httpx client) opening two apps on
    127.0.0.1 with their printed URLs must stay signed in to both."""
    import httpx

    first = make_workspace(tmp_path / "a")
    second = make_workspace(tmp_path / "b")
    apps = [
        create_label_app(LabelSettings(workspace=w.root, token=t)) for w, t in ((first, "tok-a"), (second, "tok-b"))
    ]
    with LiveServer(apps[0]) as a, LiveServer(apps[1]) as b, httpx.Client(timeout=30) as browser:
        for srv, token in ((a, "tok-a"), (b, "tok-b")):
            page = browser.get(f"{srv.url}/?token={token}", follow_redirects=False)
            assert page.status_code == 303
            assert f"picsift_token_{srv.port}={token}" in page.headers["set-cookie"]
        assert {c.name for c in browser.cookies.jar} == {f"picsift_token_{a.port}", f"picsift_token_{b.port}"}
        for srv in (a, b):  # the second app's cookie did not replace the first one's
            assert browser.get(f"{srv.url}/api/summary").status_code == 200, srv.url
    first.close()
    second.close()


def test_state_changing_requests_need_the_pages_header_and_same_origin(ws: Workspace) -> None:
    image = ws.catalog.images(labeled=False)[0]
    body = {"image_ids": [image.id], "label": "0"}
    app = create_label_app(LabelSettings(workspace=ws.root))
    with TestClient(app, base_url="http://localhost") as c:
        forged = c.post("/api/labels", json=body)  # what a cross-site form could send
        assert forged.status_code == 403 and forged.json()["error"] == "missing_client_header"
        assert ws.catalog.image(image.id).label is None
        for origin in ("http://evil.example", "null", "http://localhost:9999"):
            cross = c.post("/api/labels", json=body, headers={"X-Picsift-Client": "web", "Origin": origin})
            assert cross.status_code == 403 and cross.json()["error"] == "cross_origin", origin
        assert c.post("/api/jobs/train", json={"epochs": 1}).status_code == 403
        assert ws.catalog.image(image.id).label is None
        ok = c.post("/api/labels", json=body, headers={"X-Picsift-Client": "web", "Origin": "http://localhost"})
        assert ok.status_code == 200
    assert ws.catalog.image(image.id).label == "0"


# ---- every route behind the secret ------------------------------------------------------------------------------


def wrong_secrets(header: str, cookie: str | None = None) -> list[dict[str, str]]:
    """Headers presenting a wrong secret every way an app reads one (a near miss, a prefix, an extension, case)."""
    out = [{}, {header: "wrong"}, {header: "s3cre"}, {header: "s3cret-and-more"}, {header: "S3CRET"}]
    out += [{"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}, {header: ""}]
    if cookie:
        out.append({"Cookie": f"{cookie}=wrong"})
    return out


def test_every_label_route_refuses_without_the_token(ws: Workspace) -> None:
    app = create_label_app(LabelSettings(workspace=ws.root, token="s3cret"))
    found = routes(app)
    assert ("GET", "/static/{name:path}") in found and ("POST", "/api/labels") in found and len(found) > 25
    assert {("GET", "/"), ("GET", "/api/images/{image_id}/thumb"), ("GET", "/api/feedback/{feedback_id}/image")} <= set(
        found
    )
    with TestClient(app, base_url="http://localhost", headers={"X-Picsift-Client": "t"}) as c:
        for method, path in found:
            for headers in wrong_secrets("X-Picsift-Token", "picsift_token_80"):
                r = c.request(method, filled(path), json={}, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
            if path != "/":  # only the page takes the token from its URL
                r = c.request(method, filled(path), json={}, params={"token": "s3cret"})
                assert r.status_code == 401, (method, path, "?token=", r.status_code)
        assert c.get("/static/js/api.js", headers={"X-Picsift-Token": "s3cret"}).status_code == 200
    with TestClient(app, base_url="http://localhost", headers={"X-Picsift-Client": "t"}) as c:
        for method, path in found:  # the right token, by header, bearer or cookie, passes every route's check
            if method == "POST" and path.startswith("/api/jobs/"):
                continue  # would start a background job
            for auth in ({"X-Picsift-Token": "s3cret"}, {"Authorization": "Bearer s3cret"}):
                r = c.request(method, filled(path), json={}, headers=auth, follow_redirects=False)
                assert r.status_code != 401, (method, path, auth, r.text[:200])
        c.cookies.set("picsift_token_80", "s3cret")
        assert c.get("/api/summary").status_code == 200


def test_every_model_server_route_but_liveness_refuses_without_the_key(tmp_path: Path) -> None:
    c = server_client(tmp_path, api_key="s3cret")
    found = routes(c.app)
    assert {("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/metrics"), ("POST", "/v1/predict")} <= set(found)
    assert {("GET", "/readyz"), ("POST", "/v1/feedback"), ("POST", "/v1/admin/reload")} <= set(found)
    for method, path in found:
        r = c.request(method, filled(path))
        expected = 200 if path == "/healthz" else 401
        assert r.status_code == expected, (method, path, r.status_code)
        if path == "/healthz":
            assert r.json() == {"status": "ok"}  # liveness tells nothing about the model
            continue
        for headers in wrong_secrets("X-API-Key"):
            assert c.request(method, filled(path), headers=headers).status_code == 401, (method, path, headers)
        assert c.request(method, filled(path), params={"api_key": "s3cret", "token": "s3cret"}).status_code == 401
        for auth in ({"X-API-Key": "s3cret"}, {"Authorization": "Bearer s3cret"}):  # the key passes every check
            assert c.request(method, filled(path), headers=auth).status_code != 401, (method, path, auth)
    assert c.get("/docs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/openapi.json", headers={"X-API-Key": "s3cret"}).json()["info"]["title"] == "picsift model server"


# ---- secrets compared in constant time ------------------------------------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src" / "picsift"
SECRET_NAME = re.compile(r"(^|_)(token|api_key|apikey|secret|password|passwd)$", re.I)


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Call):  # a call's result, named by the method (`without_password(url)` strips one)
        if not isinstance(node.func, ast.Attribute) or node.func.attr.startswith("without_"):
            return []
        return _names(node.func)
    return []


def test_no_secret_is_compared_with_an_ordinary_operator() -> None:
    """Every comparison in src whose operand is named like a secret (token, api_key, secret, password) is an
    identity test against None; secrets themselves go through hmac.compare_digest (constant time)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            if all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
                continue
            if any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands):
                continue  # a comparison with a literal string: a dict key or a name, not a secret
            named = [n for o in operands for n in _names(o) if SECRET_NAME.search(n)]
            if named:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_both_apps_check_their_secret_with_compare_digest(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with app_client(ws, token="s3cret") as c:
        assert c.get("/api/summary", headers={"X-Picsift-Token": "guess"}).status_code == 401
        assert calls[-1] == (b"guess", b"s3cret")
        page = c.get("/", params={"token": "guess2"}, follow_redirects=False)
        assert page.status_code == 401 and calls[-1] == (b"guess2", b"s3cret")
    assert server_client(tmp_path, api_key="k3y").get("/metrics", headers={"X-API-Key": "g3"}).status_code == 401
    assert calls[-1] == (b"g3", b"k3y")


# ---- path traversal -------------------------------------------------------------------------------------------


def traversals(secret: Path) -> list[str]:
    up = "../" * 12 + str(secret).lstrip("/")
    return [
        up,
        up.replace("../", "%2e%2e/"),
        up.replace("../", "%252e%252e%252f"),  # encoded twice: a second decoding must not happen
        up.replace("../", "%2E%2E%5C"),
        up.replace("../", "..%2f"),
        up.replace("/", "%2F"),
        str(secret),
        "%2F" + str(secret).lstrip("/").replace("/", "%2F"),
        up.replace("/", "\\"),
        "....//" * 12 + str(secret).lstrip("/"),
    ]


def raw_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A GET whose path goes on the wire exactly as written (no client-side normalisation of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{port}")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_no_route_of_the_label_app_serves_a_file_outside_the_workspace(tmp_path: Path, ws: Workspace) -> None:
    secret = tmp_path / "secret.js"  # a type the static route serves, outside the app's folders
    secret.write_text("// SECRET-MARKER\n")
    item = FeedbackStore(ws).add("1", image=Path(ws.catalog.image(1).path).read_bytes())
    with ws.catalog.session() as s:  # a feedback row whose image path was tampered with to point outside
        row = s.get(Feedback, item.id)
        assert row is not None
        row.image_path = "../" * 12 + str(secret).lstrip("/")
    app = create_label_app(LabelSettings(workspace=ws.root, token="s3cret"))
    auth = {"X-Picsift-Token": "s3cret"}
    with LiveServer(app) as srv:
        status, _ = raw_get(srv.port, f"/api/feedback/{item.id}/image", auth)
        assert status == 404
        for method, path in routes(app):
            if method != "GET" or "{" not in path:
                continue
            for attack in traversals(secret):
                status, body = raw_get(srv.port, filled(path, attack), auth)
                assert 400 <= status < 500, (path, attack, status)
                assert b"SECRET-MARKER" not in body, (path, attack)
