"""A uv project: pyproject.toml + uv.lock, no requirements.txt. The worker runs
`uv export --frozen --no-dev --no-editable --no-emit-project` and installs exactly that."""
import json

import attrs
import idna


def handler(event, context):
    host = (event or {}).get("host", "bücher.example")
    return {"statusCode": 200, "body": json.dumps({"attrs": attrs.__version__, "ascii": idna.encode(host).decode()})}
