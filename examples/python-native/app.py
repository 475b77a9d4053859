"""A Lambda function with a native dependency: `fastsum` is a C extension, vendored in
vendor/fastsum and listed in requirements.txt, so the worker compiles it in the build
container for Lambda's OS and architecture."""
import json

import fastsum


def handler(event, context):
    numbers = (event or {}).get("numbers", [1, 2, 3])
    return {"statusCode": 200, "body": json.dumps({"sum": fastsum.total(numbers)})}
