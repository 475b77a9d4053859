"""A pure-Python Lambda function: upload it as it is."""
import json
import platform


def handler(event, context):
    name = (event or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": f"hello, {name}", "python": platform.python_version()}),
    }
