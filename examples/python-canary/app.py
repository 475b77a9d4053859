"""auto-lambda example: a function behind a URL, deployed gradually.

Lambda function URLs call the handler with an HTTP event (payload format 2.0) and turn a
dict with statusCode/body into the response.
"""
import json

VERSION = 1


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"version": VERSION, "path": event.get("rawPath", "/")}),
    }
