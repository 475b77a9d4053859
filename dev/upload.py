#!/usr/bin/env python3
"""Zip an app directory the way a user's zip tool would, upload it under apps/, and wait for the
worker's status report: the plain path (`aws s3 cp`) that infra/tests/verify_stack.py drives.
Uploaders use the `auto-lambda` command instead (`auto-lambda push --wait DIR`).

    upload.py --endpoint URL --bucket B DIR [--name NAME] [--timeout 60]

Prints the function's name, runtime, CodeSha256 and the time from upload to deployment, and
exits non-zero unless the outcome is deployed or unchanged. Without --endpoint it talks to AWS.
"""
import argparse
import io
import json
import os
import sys
import time
import zipfile


def zip_dir(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in sorted(filenames):
                full = os.path.join(dirpath, f)
                z.write(full, os.path.relpath(full, path))
    return buf.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--endpoint")
    p.add_argument("--bucket", required=True)
    p.add_argument("--name", help="function name (default: the directory's name)")
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()

    import boto3

    kw = {"endpoint_url": a.endpoint} if a.endpoint else {}
    s3 = boto3.client("s3", **kw)
    lam = boto3.client("lambda", **kw)
    name = a.name or os.path.basename(os.path.abspath(a.dir))
    key = f"apps/{name}.zip"
    body = zip_dir(a.dir)

    started = time.monotonic()
    put = s3.put_object(Bucket=a.bucket, Key=key, Body=body)
    upload_id = put.get("VersionId") or put["ETag"].strip('"')
    report_key = f"status/{key}/{upload_id}.json"
    print(f"uploaded  s3://{a.bucket}/{key} ({len(body)} bytes); waiting for s3://{a.bucket}/{report_key}")

    # The report is named after the event's versionId, or its ETag when the event carries no
    # versionId (unversioned buckets; moto never sends one): accept either.
    etag = put["ETag"].strip('"')
    etag_key = f"status/{key}/{etag}.json"
    report = None
    while time.monotonic() - started < a.timeout:
        for candidate in dict.fromkeys([report_key, etag_key]):
            try:
                report = json.load(s3.get_object(Bucket=a.bucket, Key=candidate)["Body"])
                break
            except s3.exceptions.NoSuchKey:
                continue
        if report is not None and not report.get("will_retry"):
            break
        report = None
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    if report is None:
        sys.exit(f"error: no status report after {a.timeout:.0f}s; is the worker running? (see its log)")

    print(f"outcome   {report['outcome']}")
    if report["outcome"] in ("deployed", "unchanged"):
        fn = lam.get_function(FunctionName=report["function_name"])["Configuration"]
        print(f"function  {fn['FunctionName']}  ({fn['FunctionArn']})")
        print(f"runtime   {fn['Runtime']}  handler {fn['Handler']}  state {fn.get('State')}/{fn.get('LastUpdateStatus')}")
        print(f"version   {report.get('version')}  alias {report.get('alias')}")
        print(f"sha256    {fn['CodeSha256']}  (worker built {report['code_sha256']})")
        print(f"stages    " + "  ".join(f"{k} {v} ms" for k, v in report["timings_ms"].items()))
        if report.get("dependencies"):
            print(f"deps      {report['dependencies']}")
        print(f"upload -> deployed in {elapsed * 1000:.0f} ms")
        if fn["CodeSha256"] != report["code_sha256"]:
            sys.exit("error: the function's CodeSha256 differs from the package the worker built")
    else:
        print(f"error     {report.get('error')}")
        sys.exit(1)


if __name__ == "__main__":
    main()
