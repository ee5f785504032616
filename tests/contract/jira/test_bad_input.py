"""Bad requests get Jira's status and envelope, and the server keeps serving."""

from __future__ import annotations

import pytest
import requests

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site


def _still_serving(site: Site) -> None:
    assert site.client.myself()["displayName"] == "MIM Connector"


def test_malformed_json_is_400(site: Site) -> None:
    response = site.http.post(
        site.rest("issue"), data=b'{"fields": {', headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    body = response.json()
    openapi.check(body, openapi.component("ErrorCollection"))
    assert body["errorMessages"][0].startswith("Unexpected character in JSON body")
    _still_serving(site)


def test_a_non_json_body_is_415(site: Site) -> None:
    response = site.http.post(
        site.rest("issue"),
        data=b"summary=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert response.status_code == 415 and "errorMessages" in response.json()


def test_wrong_method_is_405_with_allow(site: Site) -> None:
    response = site.http.patch(site.rest("issue/X-1"), json={}, timeout=5)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PUT", "DELETE"}
    openapi.check(response.json(), openapi.component("ErrorCollection"))
    _still_serving(site)


@pytest.mark.parametrize("auth", [None, ("mim@acme.example", "wrong"), ("nobody", "x")])
def test_bad_credentials_are_401_everywhere_but_server_info(site: Site, auth: tuple[str, str] | None) -> None:
    response = requests.get(site.rest("issue/X-1"), auth=auth, timeout=5)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
    openapi.check(response.json(), openapi.component("ErrorCollection"))
    assert requests.get(site.rest("serverInfo"), timeout=5).status_code == 200
    assert requests.get(f"{site.url}/rest/applinks/latest/listApplicationlinks", timeout=5).status_code == 401


def test_unknown_paths_and_sites_are_404(site: Site) -> None:
    assert site.http.get(site.rest("nothing/here"), timeout=5).status_code == 404
    assert (
        site.http.get(site.url.rsplit("/", 1)[0] + "/nosite/rest/api/2/myself", timeout=5).status_code == 404
    )
    missing = site.http.get(site.rest("issue/NOPE-1"), timeout=5)
    assert missing.json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }
    _still_serving(site)


def test_injected_faults_use_the_jira_envelope(site: Site) -> None:
    site.served.control.add_fault(path=f"/{site.name}/rest/api/2/myself$", status=503, count=1)
    response = site.http.get(site.rest("myself"), timeout=5)
    assert response.status_code == 503 and response.json()["errorMessages"][0].startswith("Injected fault")
    _still_serving(site)


def test_settings_control_route(site: Site) -> None:
    assert site.settings()["index_lag_seconds"] == 0.0
    assert site.settings(index_lag_seconds=2.5)["index_lag_seconds"] == 2.5
    with pytest.raises(requests.HTTPError):
        site.settings(index_lagg=1)
    info = site.served.control.info()["sites"][site.name]
    assert info["deployment"] == site.deployment and info["url"] == site.url
    assert info["users"][0]["username"] and info["projects"][0]["key"] == site.project
    site.served.control.reset()
    assert site.settings()["index_lag_seconds"] == 0.0
