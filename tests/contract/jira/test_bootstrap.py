"""What python-jira does before any business call: serverInfo, myself, field, project lookups."""

from __future__ import annotations

import pytest
import requests
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Served, Site, cloud_client, dc_client


def test_construction_reads_server_info_anonymously(site: Site, served: Served) -> None:
    since = served.control.last_seq()
    client = cloud_client(served) if site.cloud else dc_client(served)
    calls = [(e["method"], e["path"], e["user"]) for e in served.control.requests(since=since)]
    assert calls == [("GET", f"/{site.name}/rest/api/2/serverInfo", None)]
    assert client.deploymentType == ("Cloud" if site.cloud else "Server")
    info = client.server_info()
    assert info["baseUrl"] == site.url and all(isinstance(n, int) for n in info["versionNumbers"])
    client.close()


@pytest.mark.parametrize("version", ["2", "3"])
def test_server_info_matches_the_spec(cloud: Site, version: str) -> None:
    response = cloud.http.get(cloud.rest("serverInfo", version), timeout=5, auth=None)
    body = openapi.validate(response, "/rest/api/3/serverInfo")
    assert body["deploymentType"] == "Cloud"


def test_a_wrong_token_is_only_noticed_by_myself(site: Site, served: Served) -> None:
    client = cloud_client(served, token="wrong") if site.cloud else dc_client(served, pat="wrong")
    with pytest.raises(JIRAError) as caught:
        client.myself()
    assert caught.value.status_code == 401
    client.close()


def test_myself_carries_identity_and_time_zone(site: Site) -> None:
    me = site.client.myself()
    if site.cloud:
        assert me["accountId"].startswith("5b10") and "name" not in me
        assert me["timeZone"] == "Europe/Berlin"
    else:
        assert (me["name"], me["key"], me["timeZone"]) == ("mim-connector", "JIRAUSER10000", "Asia/Kolkata")
        assert "accountId" not in me
    openapi.check(me, openapi.component("User"))


def test_myself_v3_matches_the_spec(cloud: Site) -> None:
    openapi.validate(cloud.http.get(cloud.rest("myself", "3"), timeout=5), "/rest/api/3/myself")


def test_fields_list_custom_fields_with_clause_names(site: Site) -> None:
    fields = {f["id"]: f for f in site.client.fields()}
    snow = fields["customfield_10050"]
    assert snow["clauseNames"] == ["cf[10050]", "SNOW Ref"] and snow["custom"] is True
    assert snow["schema"] == {
        "type": "string",
        "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
        "customId": 10050,
    }
    assert fields["updated"]["clauseNames"] == ["updated", "updatedDate"]
    assert fields["status"]["schema"] == {"type": "status", "system": "status"}
    response = site.http.get(site.rest("field"), timeout=5)
    openapi.validate(response, "/rest/api/3/field")


def test_project_by_key_and_by_id_with_issue_types(site: Site) -> None:
    by_key = site.client.project(site.project)
    by_id = site.client.project(by_key.id, expand="issueTypes")
    assert by_id.key == site.project and by_id.issueTypes[0].name == site.issue_type
    for path in (f"project/{site.project}", f"project/{by_key.id}?expand=issueTypes"):
        openapi.validate(site.http.get(site.rest(path), timeout=5), "/rest/api/3/project/{projectIdOrKey}")
    listed = site.http.get(site.rest("project?expand=issueTypes"), timeout=5)
    assert [p["key"] for p in openapi.validate(listed, "/rest/api/3/project")] == [site.project]


def test_unknown_project_is_404(site: Site) -> None:
    response = site.http.get(site.rest("project/NOPE"), timeout=5)
    assert response.status_code == 404
    assert response.json() == {"errorMessages": ["No project could be found with key 'NOPE'."], "errors": {}}


@pytest.mark.parametrize("catalogue", ["priority", "resolution", "status", "issuetype"])
def test_catalogues_match_the_spec(cloud: Site, catalogue: str) -> None:
    response = cloud.http.get(cloud.rest(catalogue, "3"), timeout=5)
    assert openapi.validate(response, f"/rest/api/3/{catalogue}")


def test_datacenter_has_no_v3(dc: Site) -> None:
    response = dc.http.get(dc.rest("myself", "3"), timeout=5)
    assert response.status_code == 404 and "errorMessages" in response.json()


def test_cloud_rejects_bearer_and_datacenter_accepts_basic_password(cloud: Site, dc: Site) -> None:
    bearer = requests.get(cloud.rest("myself"), headers={"Authorization": "Bearer acme-token"}, timeout=5)
    assert bearer.status_code == 401
    assert bearer.json() == {
        "errorMessages": ["Client must be authenticated to access this resource."],
        "errors": {},
    }
    password = requests.get(dc.rest("myself"), auth=("mim-connector", "pw"), timeout=5)
    assert password.status_code == 200 and password.json()["name"] == "mim-connector"
    denied = requests.get(dc.rest("myself"), auth=("jroe", "jroe-pat"), timeout=5)
    assert denied.status_code == 401 and denied.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"


def test_user_lookup_by_account_id_or_username(site: Site) -> None:
    me = site.client.myself()
    user = site.client.user(me["accountId"] if site.cloud else me["name"])
    assert user.displayName == "MIM Connector" and user.timeZone == me["timeZone"]
    nobody = {"accountId": "nobody", "username": "nobody"}
    assert site.http.get(site.rest("user"), params=nobody, timeout=5).status_code == 404
