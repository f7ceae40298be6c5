"""The OpenAPI document at /api/schema/: valid 3.1, complete, and true to the answers."""

from __future__ import annotations

import re
import tomllib
from types import SimpleNamespace

import pytest
import yaml
from openapi_spec_validator import validate

from handlers.app import HANDLER_MODULES
from handlers.base import BaseHandler, public, staff_only, user_only
from handlers.openapi import Header, Reply, api, build_document, undocumented
from handlers.replies import Detail
from handlers.route_templates import implemented, route_of, routes_of
from tests.openapi_check import DocumentCheck


@pytest.fixture
def document(api, io_loop):
    reply = io_loop.run_sync(lambda: api.get("/api/schema/"))
    assert reply.code == 200
    return reply.data


def operations(document):
    for template, item in document["paths"].items():
        for method, operation in item.items():
            yield template, method, operation


def test_the_schema_is_a_valid_openapi_3_1_document(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_the_schema_carries_the_projects_version_and_a_relative_server(document):
    with open("pyproject.toml", "rb") as file:
        assert document["info"]["version"] == tomllib.load(file)["project"]["version"]
    assert document["servers"] == [{"url": "/"}]


async def test_the_schema_is_served_as_yaml_on_request(api, document):
    reply = await api.get("/api/schema/?format=yaml")
    assert reply.code == 200
    assert reply.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(reply.body) == document


async def test_an_unknown_schema_format_is_a_field_error(api):
    reply = await api.get("/api/schema/?format=xml")
    assert reply.code == 400
    assert reply.data == {"format": ["Select one of: json, yaml."]}


async def test_the_document_is_built_once_per_app(api, app):
    first = await api.get("/api/schema/")
    second = await api.get("/api/schema/")
    assert first.body == second.body
    assert app.settings["openapi_document"]["paths"] == first.data["paths"]


def test_every_route_and_method_of_every_handler_module_is_in_the_document(document):
    assert undocumented(HANDLER_MODULES, document) == []
    expected = {(r.template, m) for r in routes_of(HANDLER_MODULES) for m in implemented(r.handler)}
    assert {(template, method) for template, method, _ in operations(document)} == expected


def test_a_handler_method_without_a_declaration_is_reported_missing():
    class Declared(BaseHandler):
        @api("Read a thing", responses={200: Detail})
        @user_only
        async def get(self, thing_id: str) -> None: ...

        @staff_only
        async def delete(self, thing_id: str) -> None: ...

    module = SimpleNamespace(routes=[(r"/api/things/([^/]+)/?", Declared)])
    document = build_document([module], version="0")
    assert list(document["paths"]) == ["/api/things/{thing_id}/"]
    assert undocumented([module], document) == ["DELETE /api/things/{thing_id}/ (Declared)"]


def test_every_operation_is_secured_as_its_access_level_says(document):
    levels = {}
    for route in routes_of(HANDLER_MODULES):
        for method in implemented(route.handler):
            levels[route.template, method] = getattr(route.handler, method).access
    for template, method, operation in operations(document):
        level = levels[template, method]
        responses = operation["responses"]
        if level == "public":
            assert operation["security"] == [], (template, method)
        else:
            assert operation["security"] == [{"Token": []}], (template, method)
            assert "401" in responses, (template, method)
        assert ("403" in responses) >= (level == "staff"), (template, method)
    scheme = document["components"]["securitySchemes"]["Token"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")


def test_every_operation_documents_its_error_answers(document):
    for template, method, operation in operations(document):
        responses = operation["responses"]
        if "{" in template:
            assert "404" in responses, (template, method)
        if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in responses, (template, method)
        for status, answer in responses.items():
            if status >= "400" and method != "head":
                schema = answer["content"]["application/json"]["schema"]
                assert "Detail" in str(schema), (template, method, status)


def test_throttled_routes_and_uploads_document_their_refusals(document):
    paths = document["paths"]
    for template in ("/api/accounts/signup/", "/api/accounts/login/", "/api/accounts/password/reset/"):
        assert "429" in paths[template]["post"]["responses"]
    upload = paths["/api/videos/"]["post"]
    assert {"400", "413", "415", "507"} <= set(upload["responses"])
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    assert set(form["required"]) == {"file", "title"}


def test_stream_paths_take_the_grant_in_the_path_and_no_token(document):
    stream = document["paths"]["/api/stream/{grant}/{name}"]["get"]
    assert stream["security"] == []
    assert [p["name"] for p in stream["parameters"] if p["in"] == "path"] == ["grant", "name"]
    assert "video/mp2t" in stream["responses"]["200"]["content"]
    assert "content" not in document["paths"]["/api/stream/{grant}/{name}"]["head"]["responses"]["200"]


def test_query_parameters_are_the_ones_the_handler_validates(document):
    params = {p["name"]: p for p in document["paths"]["/api/videos/"]["get"]["parameters"]}
    assert set(params) == {"limit", "offset", "status", "search", "category", "ordering"}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1}
    assert params["status"]["schema"]["enum"] == ["pending", "processing", "ready", "failed"]


async def test_a_bad_query_parameter_still_answers_the_contracts_field_error(api, user_token):
    reply = await api.get("/api/videos/?limit=many", token=user_token)
    assert reply.code == 400
    assert reply.data == {"limit": ["A valid integer is required."]}
    reply = await api.get("/api/videos/?limit=0", token=user_token)
    assert reply.data == {"limit": ["Ensure this value is greater than or equal to 1."]}


def test_the_suites_check_refuses_an_answer_that_breaks_the_document():
    check = DocumentCheck.of(HANDLER_MODULES)
    json_type = {"Content-Type": "application/json"}
    check.check("GET", "/api/accounts/users/me/", 401, json_type, b'{"detail": "No."}')
    with pytest.raises(AssertionError, match="breaks the document"):
        check.check("GET", "/api/accounts/users/me/", 200, json_type, b'{"id": 1}')
    with pytest.raises(AssertionError, match="status not in the document"):
        check.check("GET", "/api/accounts/users/me/", 418, json_type, b'{"detail": "Teapot."}')
    with pytest.raises(AssertionError, match="not in the document"):
        check.check("PUT", "/api/accounts/users/me/", 200, json_type, b"{}")
    check.check("PUT", "/api/accounts/users/me/", 405, json_type, b'{"detail": "Method not allowed."}')


def test_a_new_module_with_headers_a_raw_body_and_options_is_documented_and_valid():
    class Resumable(BaseHandler):
        @api(
            "Append bytes",
            raw_body="application/offset+octet-stream",
            headers=[Header("Upload-Offset", "Where the bytes go.", required=True)],
            responses={204: Reply("Appended.", headers={"Upload-Offset": "The new offset."})},
            errors=[409, 410],
        )
        @staff_only
        async def patch(self, upload_id: str) -> None: ...

        @api("What the server supports", responses={204: Reply("Tus-Version and the extensions.")})
        @public
        def options(self, *args: str) -> None: ...

    module = SimpleNamespace(routes=[(r"/api/uploads/([0-9a-f]+)/?", Resumable)])
    document = build_document([module], version="0")
    validate(document)
    assert undocumented([module], document) == []
    item = document["paths"]["/api/uploads/{upload_id}/"]
    assert set(item) == {"patch", "options"}
    patch = item["patch"]
    assert list(patch["requestBody"]["content"]) == ["application/offset+octet-stream"]
    assert [p["name"] for p in patch["parameters"]] == ["upload_id", "Upload-Offset"]
    assert set(patch["responses"]) == {"204", "400", "401", "403", "404", "409", "410", "415"}
    assert "Upload-Offset" in patch["responses"]["204"]["headers"]


async def test_an_offset_past_what_mongodb_can_skip_is_a_field_error_not_a_crash(api, staff_token):
    for path in ("/api/videos/", "/api/admin/jobs/", "/api/admin/users/"):
        reply = await api.get(f"{path}?offset={2**63}", token=staff_token)
        assert reply.code == 400, path
        assert reply.data == {"offset": ["Ensure this value is less than or equal to 2147483647."]}


def test_route_groups_become_path_parameters_named_after_the_handler_method():
    class Files(BaseHandler):
        @user_only
        async def get(self, video_id: str, height: str, file: str) -> None: ...

    route = route_of(r"/api/video/([^/]+)/(\d{2,4})p/([^/]+?)/?", Files)
    assert route.template == "/api/video/{video_id}/{height}p/{file}/"
    assert route.parameters == (("video_id", "[^/]+"), ("height", r"\d{2,4}"), ("file", "[^/]+?"))
    named = route_of(r"/api/uploads/(?P<upload_id>[0-9a-f]{32})", Files)
    assert named.template == "/api/uploads/{upload_id}"
    assert named.parameters == (("upload_id", "[0-9a-f]{32}"),)
    with pytest.raises(ValueError, match="plain or named groups"):
        route_of(r"/api/(?:a|b)/", Files)


# --- the constraints the code enforces ------------------------------------------------------------


@pytest.fixture
def settings_overrides():
    return {"accounts": {"password_min_length": 12}}


def body_schema(document, template, method="post"):
    ref = document["paths"][template][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]


@pytest.mark.parametrize(
    "template",
    ["/api/accounts/signup/", "/api/accounts/password/change/", "/api/accounts/password/reset/verified/"],
)
async def test_the_password_minimum_in_the_document_is_the_configured_one_the_server_enforces(
    api, document, template
):
    assert body_schema(document, template)["properties"]["password"]["minLength"] == 12
    reply = await api.post("/api/accounts/signup/", {"email": "ann@example.com", "password": "x" * 11})
    assert reply.data == {"password": ["Ensure this field has at least 12 characters."]}
    reply = await api.post("/api/accounts/signup/", {"email": "ann@example.com", "password": "x" * 12})
    assert reply.code == 201


@pytest.mark.parametrize(
    "template", ["/api/accounts/signup/", "/api/accounts/password/reset/", "/api/accounts/email/change/"]
)
def test_every_email_the_server_checks_is_declared_an_email(document, template):
    assert body_schema(document, template)["properties"]["email"]["format"] == "email"


@pytest.mark.parametrize(
    "template",
    [
        "/api/accounts/signup/verify/",
        "/api/accounts/password/reset/verify/",
        "/api/accounts/email/change/verify/",
    ],
)
async def test_codes_are_declared_required_and_non_empty_and_a_missing_one_fails_as_a_wrong_one(
    api, document, template
):
    [code] = [p for p in document["paths"][template]["get"]["parameters"] if p["name"] == "code"]
    assert code["required"] is True and code["schema"]["minLength"] == 1
    reply = await api.get(template)
    assert (reply.code, reply.data) == (400, {"detail": "Unable to verify user."})


def test_the_reset_code_in_a_body_is_declared_non_empty(document):
    schema = body_schema(document, "/api/accounts/password/reset/verified/")
    assert schema["properties"]["code"]["minLength"] == 1
    assert set(schema["required"]) == {"code", "password"}


def test_a_document_built_without_settings_shows_no_placeholder():
    document = build_document(HANDLER_MODULES, version="0")
    assert "x-min-length-setting" not in str(document) and "x-enum-setting" not in str(document)


async def test_the_job_type_filter_is_declared_as_the_job_types_the_app_runs_with(
    api, document, services, staff_token
):
    [kind] = [p for p in document["paths"]["/api/admin/jobs/"]["get"]["parameters"] if p["name"] == "type"]
    kinds = ["mail", "transcode", "publish", "av1", "audio_track"]
    assert kind["schema"]["enum"] == list(services.queue.types) == kinds
    reply = await api.get("/api/admin/jobs/?type=nope", token=staff_token)
    assert (reply.code, reply.data) == (400, {"type": [f"Select one of: {', '.join(kinds)}."]})
    assert (await api.get("/api/admin/jobs/?type=mail", token=staff_token)).code == 200


async def test_the_document_declares_that_special_use_domains_are_refused(api, document):
    schema = body_schema(document, "/api/accounts/signup/")["properties"]["email"]
    refused = re.compile(schema["not"]["pattern"])
    for address in ("ann@example.test", "ann@mail.LOCALHOST", "ann@x.onion"):
        assert refused.search(address)
        reply = await api.post("/api/accounts/signup/", {"email": address, "password": "x" * 12})
        assert reply.code == 400 and "email" in reply.data
    assert not refused.search("ann@example.com")
