#!/usr/bin/env python3
"""Every custom metric the dashboard (and, with --endpoint, the alarms and scaling policies)
names must be one the binaries emit: checked against the Rust sources, not against a list.

    check_metrics.py --outputs outputs.json [--endpoint URL] [--pending NAME ...]

A metric counts as emitted when its name, each of its dimension names and each dimension value
the dashboard fixes (an outcome, a stage) appear as string literals in the non-test code of
worker/, queue-metric-publisher/ or common/. Metrics in AWS/* namespaces are AWS's own.

--pending NAME accepts a metric (or dimension) the code does not emit yet, and says so loudly;
it exists so that infra/ can ship ahead of the binaries. Remove each one as the code lands.
"""
import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRATES = ("worker/src", "queue-metric-publisher/src", "common/src")
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def rust_literals():
    """String literals of the crates' non-test code (each file cut at its first #[cfg(test)])."""
    found = {}
    for crate in CRATES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, crate)):
            for name in files:
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read().split("#[cfg(test)]", 1)[0]
                text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
                for lit in LITERAL.findall(text):
                    found.setdefault(lit, os.path.relpath(path, ROOT))
    return found


def dashboard_metrics(body, namespace):
    """(name, {dimension: value}, where) for every metric of `namespace` in a dashboard body."""
    out = []
    for w in body.get("widgets", []):
        for m in w.get("properties", {}).get("metrics", []):
            parts = [x for x in m if not isinstance(x, dict)]
            if not parts or parts[0] == ".":
                continue
            ns, name, dims = parts[0], parts[1], parts[2:]
            if ns == namespace:
                out.append((name, dict(zip(dims[0::2], dims[1::2])), f"dashboard widget {w['properties'].get('title')!r}"))
    return out


def live_metrics(endpoint, out, namespace):
    import boto3

    kw = dict(endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    found = []
    for a in boto3.client("cloudwatch", **kw).describe_alarms()["MetricAlarms"]:
        if a.get("Namespace") == namespace:
            found.append((a["MetricName"], {d["Name"]: d["Value"] for d in a["Dimensions"]}, f"alarm {a['AlarmName']}"))
        for q in a.get("Metrics", []):
            ms = q.get("MetricStat", {}).get("Metric")
            if ms and ms.get("Namespace") == namespace:
                found.append((ms["MetricName"], {d["Name"]: d["Value"] for d in ms.get("Dimensions", [])}, f"alarm {a['AlarmName']}"))
    asg = boto3.client("autoscaling", **kw)
    for p in asg.describe_policies(AutoScalingGroupName=out["worker_asg_name"])["ScalingPolicies"]:
        spec = p.get("TargetTrackingConfiguration", {}).get("CustomizedMetricSpecification")
        if spec and spec.get("Namespace") == namespace:
            found.append((spec["MetricName"], {d["Name"]: d["Value"] for d in spec.get("Dimensions", [])}, f"scaling policy {p['PolicyName']}"))
    return found


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outputs", required=True, help="`terraform output -json` saved to a file")
    p.add_argument("--endpoint", help="also check the applied alarms and scaling policies")
    p.add_argument("--pending", nargs="*", default=[], help="names the code does not emit yet")
    a = p.parse_args()
    with open(a.outputs) as f:
        out = {k: v["value"] for k, v in json.load(f).items()}
    namespace = out["metric_namespace"]
    queue_name = out["queue_arn"].split(":")[-1]
    asg_name = out["worker_asg_name"]

    body = json.loads(out["dashboard_body"])  # raises if the body is not JSON
    print(f"dashboard body is valid JSON: {len(body['widgets'])} widgets")
    metrics = dashboard_metrics(body, namespace)
    if a.endpoint:
        metrics += live_metrics(a.endpoint, out, namespace)

    literals = rust_literals()
    # Values that come from the stack itself, not from the code.
    stack_values = {queue_name, asg_name}
    missing, pending_used = [], set()
    seen = set()
    for name, dims, where in metrics:
        key = (name, tuple(sorted(dims.items())))
        if key in seen:
            continue
        seen.add(key)
        wanted = [name, *dims.keys(), *(v for v in dims.values() if v not in stack_values)]
        for w in wanted:
            if w in literals:
                continue
            if w in a.pending:
                pending_used.add(w)
                continue
            missing.append(f"{namespace}/{name} {dims}: {w!r} is in no string literal of {', '.join(CRATES)} ({where})")
        shown = ",".join(f"{k}={v}" for k, v in dims.items())
        state = "PENDING" if any(w in a.pending and w not in literals for w in wanted) else "emitted"
        print(f"  {state:8} {namespace}/{name}{{{shown}}}  ({where})")

    for w in sorted(pending_used):
        print(f"warning: {w!r} is accepted as pending: the binaries do not emit it yet", file=sys.stderr)
    stale = sorted(w for w in a.pending if w in literals)
    for w in stale:
        print(f"note: {w!r} is now in the code ({literals[w]}); drop it from --pending", file=sys.stderr)
    if missing:
        sys.exit("metrics named but not emitted:\n  " + "\n  ".join(missing))
    print(f"every {namespace} metric named is emitted by the code" + (" or pending" if pending_used else ""))


if __name__ == "__main__":
    main()
