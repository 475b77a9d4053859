"""A Python function with real PyPI dependencies: the worker installs requirements.txt in the
build image (which needs the build network to reach PyPI: the default `bridge`)."""
import json

import requests


def handler(event, context):
    url = (event or {}).get("url", "https://checkip.amazonaws.com")
    response = requests.get(url, timeout=5)
    return {"statusCode": 200, "body": json.dumps({"status": response.status_code, "requests": requests.__version__})}
