"""The OpenAPI document is generated from the routes and covers all of them."""
from __future__ import annotations


def test_openapi_document_is_served(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    register = spec["paths"]["/api/auth/register"]["post"]
    assert register["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RegisterBody"}
    assert set(register["responses"]) >= {"201", "400", "409"}
    assert "user_id" in spec["components"]["schemas"]["RegisterBody"]["properties"]


def test_every_api_route_is_documented(app):
    missing = [
        f"{sorted(rule.methods - {'HEAD', 'OPTIONS'})} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint != "api_openapi.spec"
        and not hasattr(app.view_functions[rule.endpoint], "openapi")
    ]
    assert missing == []
