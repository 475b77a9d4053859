"""A Poetry project: pyproject.toml + poetry.lock, no requirements.txt. The worker installs
the lock's main group (attrs, six) with their hashes, and leaves the dev group out."""
import json

import attrs
import six


def handler(event, context):
    return {"statusCode": 200, "body": json.dumps({"attrs": attrs.__version__, "six": six.__version__})}
