"""Every endpoint the SDK calls is in the committed OpenAPI document, with that method."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from partner_sdk import k2, sabong

from tests.live_services import PROJECT_ROOT

DOCUMENT = json.loads((PROJECT_ROOT / "shared" / "openapi.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("method", "path"), [*k2.ENDPOINTS, *sabong.ENDPOINTS])
def test_endpoint_is_documented(method: str, path: str) -> None:
    operations = DOCUMENT["paths"].get(path)
    assert operations is not None, f"{path} is not in shared/openapi.json"
    assert method.lower() in operations, f"{method} {path} is not in shared/openapi.json"


@pytest.mark.parametrize("module", [k2, sabong])
def test_endpoint_tables_list_every_path_constant(module: ModuleType) -> None:
    """A new *_PATH constant must join ENDPOINTS, or the test above would not see it."""
    constants = {value for name, value in vars(module).items() if name.endswith("_PATH")}
    assert constants == {path for _, path in module.ENDPOINTS}
