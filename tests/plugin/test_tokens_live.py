"""A personal access token, what Label Studio 1.23 hands out by default, on the session's real
server (which also has legacy tokens, the token the other tests use)."""

import httpx
import pytest

from relabeler.plugin.client import StudioAuthError, StudioClient

pytestmark = pytest.mark.slow


def personal_access_token(studio) -> str:
    """Made as the UI makes one: a session login, then POST /api/token/."""
    with httpx.Client(base_url=studio.url, follow_redirects=True, timeout=60) as http:
        http.get("/user/login/")
        login = http.post("/user/login/", data={
            "email": studio.username, "password": studio.password,
            "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")},
            headers={"Referer": f"{studio.url}/user/login/"})
        assert login.status_code == 200
        made = http.post("/api/token/", headers={"X-CSRFToken": http.cookies.get("csrftoken", ""),
                                                 "Referer": f"{studio.url}/"})
        assert made.status_code == 201, made.text[:200]
        return made.json()["token"]


def test_a_personal_access_token_pushes_and_reads_tasks(studio):
    token = personal_access_token(studio)
    assert token.count(".") == 2  # a JWT, exchanged for access tokens by the SDK
    client = StudioClient(studio.url + "/", token, token_source="MY_PAT", retries=0)
    assert client.whoami()["email"] == studio.username
    project = client.create_project("pat", "<View><Text name='t' value='$text'/><Choices "
                                    "name='c' toName='t'><Choice value='a'/></Choices></View>")
    ids = client.import_tasks(project.id, [{"data": {"text": "one"}}, {"data": {"text": "two"}}])
    assert [t["data"]["text"] for t in client.list_tasks(project.id)] == ["one", "two"]
    assert sorted(client.task_data(project.id)) == sorted(ids)
    with pytest.raises(StudioAuthError, match=r"\(MY_PAT\) .*: Token is invalid\. "):
        StudioClient(studio.url, token[:-4] + "AAAA", token_source="MY_PAT", retries=0).whoami()
