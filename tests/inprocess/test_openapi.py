"""The API's reference in process: what /openapi.json says each route answers, and the framework's own refusals."""

from __future__ import annotations

import re
from typing import Any

from tests.inprocess.conftest import Daemon

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def test_every_error_answer_is_documented_with_the_one_error_body(daemon: Daemon) -> None:
    document = daemon.alice.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {status: answer for status, answer in operation["responses"].items() if int(status) >= 400}
            assert all(answer["content"] == ERROR_BODY for answer in errors.values()), (method, path)
            if path != "/healthz":  # health checks carry no token
                assert "401" in errors and operation["security"] == [{"bearer": []}], (method, path)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert set(document["components"]["schemas"]["ErrorDetail"]["required"]) == {"code", "message"}
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's {"detail": [...]}, which no route answers


def test_each_route_documents_the_statuses_it_gives(daemon: Daemon) -> None:
    paths = daemon.alice.get("/openapi.json").json()["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/v1/jobs", "post") == {"200", "201", "400", "401", "403", "409", "413", "422", "507"}
    assert statuses("/v1/jobs", "get") == {"200", "401", "422"}
    assert statuses("/v1/jobs/{job_id}", "get") == {"200", "401", "404"}  # a job id is any string: never a 422
    assert statuses("/v1/jobs/{job_id}/cancel", "post") == {"202", "401", "404", "507"}
    assert statuses("/v1/jobs/{job_id}/logs", "get") == {"200", "401", "404", "422"}
    assert statuses("/v1/images/pull", "post") == {"200", "400", "401", "403", "413", "422"}
    assert statuses("/v1/credentials", "post") == {"201", "400", "401", "413", "422", "502", "503", "507"}
    assert statuses("/healthz", "get") == {"200"}


def test_streams_are_documented_with_their_media_types_and_the_websocket_in_words(daemon: Daemon) -> None:
    paths = daemon.alice.get("/openapi.json").json()["paths"]
    logs: dict[str, Any] = paths["/v1/jobs/{job_id}/logs"]["get"]
    assert logs["responses"]["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}
    assert "websocket" in logs["description"] and '{"type": "end", "status", "exit_code", "error"}' in logs["description"]
    assert list(paths["/v1/images/pull"]["post"]["responses"]["200"]["content"]) == ["application/x-ndjson"]
    job = daemon.alice.submit("detectnet_v2", "exit", "0")
    daemon.alice.wait_for(job["id"], "succeeded")
    assert daemon.alice.get(f"/v1/jobs/{job['id']}/logs").headers["content-type"] == "text/plain; charset=utf-8"
    pulled = daemon.alice.post("/v1/images/pull", json={"tasks": ["unet"]})
    assert pulled.headers["content-type"] == "application/x-ndjson"


def test_the_pages_carry_the_document_so_one_authenticated_fetch_shows_it(daemon: Daemon) -> None:
    for page in ("/docs", "/redoc"):
        answer = daemon.alice.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        assert '"/v1/jobs/{job_id}/logs"' in answer.text
        assert "</script>" not in answer.text.split("<script>", 2)[-1].split("</script>")[0]  # the JSON cannot end its script


def test_the_pages_load_nothing_from_elsewhere(daemon: Daemon) -> None:
    # An air-gapped GPU box reaches no CDN: the viewer's script and stylesheet come inside the page.
    for page, viewer in (("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc.init")):
        text = daemon.alice.get(page).text
        sources = re.findall(r"""(?:src|href)=['"]([^'"]{0,40})""", text)
        assert sources and all(source.startswith("data:") for source in sources), sources
        assert viewer in text


def test_a_body_that_cannot_be_read_is_an_error_in_the_error_shape(daemon: Daemon) -> None:
    headers = {**daemon.alice.headers, "content-type": "application/json"}
    answer = daemon.client.post("/v1/jobs", content=b'{"task": "\xff"}', headers=headers)  # not UTF-8
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("the request body is not valid JSON: cannot be decoded as utf-8")


def test_a_login_name_with_a_newline_reaches_the_service(daemon: Daemon) -> None:
    # Starlette's `path` parameters stop at a newline: the route would not match, and the answer would be a bare 404.
    answer = daemon.alice.delete("/v1/credentials/a%0Ab")
    assert (answer.status_code, answer.json()["error"]["field"]) == (422, "registry")
