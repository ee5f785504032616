"""OAuth through pysnow.OAuthClient, token expiry, rate limits, injected faults, control routes."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs

import pysnow
import pytest
import requests

from tests.contract.servicenow.conftest import CLIENT, SVC, T0, Snow


@pytest.fixture
def insecure_oauth(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses plain http otherwise; the simulator listens on loopback without TLS.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def oauth_client(snow: Snow, updates: list[dict[str, object]]) -> pysnow.OAuthClient:
    return pysnow.OAuthClient(
        client_id=CLIENT.client_id,
        client_secret=CLIENT.client_secret,
        token_updater=updates.append,
        host=snow.host,
        use_ssl=False,
    )


def test_password_grant_then_bearer_calls_then_refresh(snow: Snow, insecure_oauth: None) -> None:
    updates: list[dict[str, object]] = []
    client = oauth_client(snow, updates)
    token = client.generate_token(SVC.user_name, SVC.password)
    assert {"access_token", "refresh_token", "scope", "token_type", "expires_in"} <= token.keys()
    assert (token["token_type"], token["expires_in"], token["scope"]) == ("Bearer", 1800, ["useraccount"])
    grant = snow.control.requests()[-1]
    assert grant["path"] == "/oauth_token.do" and "client_id" not in grant["body"], (
        "pysnow sends them as Basic"
    )
    client.set_token(token)
    created = (
        client.resource(api_path="/table/incident").create(payload={"short_description": "via oauth"}).one()
    )
    assert created["sys_created_by"] == SVC.user_name
    client.set_token({**token, "expires_at": time.time() - 5})
    rows = client.resource(api_path="/table/incident").get(query="", fields=["number"]).all()
    assert rows == [{"number": created["number"]}]
    assert len(updates) == 1 and updates[0]["access_token"] != token["access_token"]
    assert updates[0]["refresh_token"] == token["refresh_token"]
    refresh = [e for e in snow.control.requests() if e["path"] == "/oauth_token.do"][-1]
    form = parse_qs(refresh["body"])
    assert form["grant_type"] == ["refresh_token"] and "params" in form, "pysnow leaks params into the form"


def test_expired_token_answers_401_and_pysnow_does_not_refresh_on_401(
    snow: Snow, insecure_oauth: None
) -> None:
    snow.control.post("settings", {"token_ttl_seconds": 60})
    client = oauth_client(snow, [])
    client.set_token(client.generate_token(SVC.user_name, SVC.password))
    assert client.resource(api_path="/table/incident").get(query="").all() == []
    snow.skew(61)
    with pytest.raises(requests.HTTPError) as raised:
        client.resource(api_path="/table/incident").get(query="").all()
    assert raised.value.response.status_code == 401
    assert raised.value.response.json()["error"]["message"] == "User Not Authenticated"


def test_token_endpoint_accepts_client_credentials_in_the_body(snow: Snow) -> None:
    response = requests.post(
        f"{snow.url}/oauth_token.do",
        data={
            "grant_type": "password",
            "client_id": CLIENT.client_id,
            "client_secret": CLIENT.client_secret,
            "username": SVC.user_name,
            "password": SVC.password,
            "extra": "ignored",
        },
        timeout=5,
    )
    token = response.json()["access_token"]
    listed = requests.get(snow.table("incident"), headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert listed.status_code == 200


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        (
            {"grant_type": "password", "username": "svc.mim-connector", "password": "wrong"},
            CLIENT,
            401,
            "server_error",
        ),
        (
            {"grant_type": "password", "username": "svc.mim-connector", "password": "svc-secret"},
            None,
            401,
            "server_error",
        ),
        ({"grant_type": "refresh_token", "refresh_token": "forged"}, CLIENT, 401, "server_error"),
        ({"grant_type": "client_credentials"}, CLIENT, 400, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_refusals(snow: Snow, data, auth, status: int, error: str) -> None:
    basic = (auth.client_id, auth.client_secret) if auth else None
    response = requests.post(f"{snow.url}/oauth_token.do", data=data, auth=basic, timeout=5)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_token_endpoint_wants_a_form(snow: Snow) -> None:
    response = requests.post(f"{snow.url}/oauth_token.do", json={"grant_type": "password"}, timeout=5)
    assert response.status_code == 400


def test_rate_limit_headers_and_429(snow: Snow) -> None:
    session = snow.session()
    assert not any(h.lower().startswith("x-ratelimit") for h in session.get(snow.table("incident")).headers)
    rule = {"user": SVC.user_name, "method": "GET", "path": "^/api/now/table/incident", "limit": 2}
    [installed] = snow.control.post("ratelimits", [rule])["ratelimits"]
    reset_at = int((T0.replace(minute=0, second=0) + timedelta(hours=1)).timestamp())
    for _ in range(2):
        allowed = session.get(snow.table("incident"))
        assert allowed.status_code == 200
        assert (allowed.headers["X-RateLimit-Limit"], allowed.headers["X-RateLimit-Reset"]) == (
            "2",
            str(reset_at),
        )
        assert allowed.headers["X-RateLimit-Rule"] == installed["sys_id"]
    denied = session.get(snow.table("incident"))
    assert (denied.status_code, denied.headers["Retry-After"]) == (429, str(reset_at - int(T0.timestamp())))
    assert denied.json() == {
        "error": {
            "message": "Rate limit exceeded",
            "detail": "Rate limit of 2 requests per hour for Table API exceeded",
        },
        "status": "failure",
    }
    assert "X-RateLimit-Limit" not in session.post(snow.table("incident"), json={}).headers, (
        "POST is not counted"
    )
    other = snow.session(snow.app.credentials.users["berta"]).get(snow.table("incident"))
    assert other.status_code == 200 and "X-RateLimit-Limit" not in other.headers
    with pytest.raises(requests.HTTPError) as raised:
        snow.incidents().get(query="").all()
    assert raised.value.response.status_code == 429
    snow.skew(3600)
    assert session.get(snow.table("incident")).status_code == 200, "a new window"
    snow.control._call("DELETE", "ratelimits")
    assert "X-RateLimit-Limit" not in session.get(snow.table("incident")).headers


def test_faults_before_and_after_commit(snow: Snow) -> None:
    record = snow.incidents().create(payload={"short_description": "x"}).one()
    snow.control.add_fault(
        method="PUT", path="^/api/now/table/incident/", status=503, count=1, headers={"Retry-After": "2"}
    )
    with pytest.raises(requests.HTTPError) as raised:
        snow.incidents().update(query={"sys_id": record["sys_id"]}, payload={"urgency": "1"}).one()
    assert raised.value.response.headers["Retry-After"] == "2"
    assert raised.value.response.json()["status"] == "failure"
    assert snow.app.get_record("incident", record["sys_id"])["urgency"] == "3"
    snow.control.add_fault(
        method="PUT", path="^/api/now/table/incident/", status=500, when="after_commit", count=1
    )
    with pytest.raises(requests.HTTPError):
        snow.incidents().update(query={"sys_id": record["sys_id"]}, payload={"urgency": "1"}).one()
    assert snow.app.get_record("incident", record["sys_id"])["urgency"] == "1", "applied, answer lost"


def test_info_and_settings_routes(snow: Snow) -> None:
    info = snow.control.info()
    assert info["name"] == "servicenow" and info["url"] == snow.url
    assert {u["user_name"] for u in info["users"]} == {"svc.mim-connector", "berta", "admin"}
    assert info["oauth_clients"] == [{"client_id": CLIENT.client_id, "client_secret": CLIENT.client_secret}]
    assert snow.control.post("settings", {"problem_state_writable": False})["problem_state_writable"] is False
    with pytest.raises(requests.HTTPError):
        snow.control.post("settings", {"no_such_flag": True})
    snow.control.reset()
    assert snow.control._call("GET", "settings")["problem_state_writable"] is True
    admin = requests.get(
        snow.table("sys_user"), auth=("admin", "admin"), params={"user_name": "admin"}, timeout=5
    )
    assert admin.json()["result"][0]["sys_id"] == "6816f79cc0a8016401c5a33be04be441"
