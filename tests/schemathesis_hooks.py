"""Schemathesis hooks of the OpenAPI conformance test (tests/openapi_conformance.rs).

The push (`POST /api/feeds/{source}`) takes `application/x-ndjson`, a media type schemathesis has
no serializer for: its body (a string in the document) is sent as UTF-8 as is; a value of another
type (negative data) as one JSON line.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8")}
    return {"data": (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")}
