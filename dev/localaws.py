#!/usr/bin/env python3
"""The local AWS for the demo and the tests: moto's server on a free loopback port, and the
resources the pipeline needs.

    localaws.py start --state DIR          start moto (dev/moto_patches.py), print its endpoint;
                                           PID and port go in DIR
    localaws.py stop --state DIR           stop the moto started with that DIR, by PID
    localaws.py bootstrap --endpoint URL [--name NAME] [--versioned] [--asg N]
                                           create bucket, queue + DLQ, notification, role; print JSON

Run it with the project's venv (dev/setup.sh makes it): .venv/bin/python dev/localaws.py ...
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REGION = "us-east-1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")

# moto accepts any credentials; these keep the SDKs from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(endpoint, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: moto did not answer on {endpoint} within {timeout:.0f}s")


def start(state):
    os.makedirs(state, exist_ok=True)
    pid_file = os.path.join(state, "moto.pid")
    if os.path.exists(pid_file):
        stop(state, quiet=True)
    port = free_port()
    log = open(os.path.join(state, "moto.log"), "ab")
    proc = subprocess.Popen(
        # moto's server with Lambda's RevisionId enforced (dev/moto_patches.py says what it adds).
        [os.path.join(VENV_BIN, "python"), os.path.join(ROOT, "dev", "moto_patches.py"),
         "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, **FAKE_CREDENTIALS},
    )
    endpoint = f"http://127.0.0.1:{port}"
    with open(pid_file, "w") as f:
        f.write(str(proc.pid))
    with open(os.path.join(state, "moto.endpoint"), "w") as f:
        f.write(endpoint)
    wait_ready(endpoint)
    print(endpoint)


def stop(state, quiet=False):
    pid_file = os.path.join(state, "moto.pid")
    try:
        pid = int(open(pid_file).read().strip())
    except (OSError, ValueError):
        if not quiet:
            print("moto is not running (no PID file)", file=sys.stderr)
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.remove(pid_file)


def clients(endpoint):
    import boto3  # from the venv

    kw = dict(endpoint_url=endpoint, region_name=REGION,
              aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("s3", **kw), boto3.client("sqs", **kw), boto3.client("iam", **kw)


def create_worker_group(endpoint, name, instances):
    """A launch template and an Auto Scaling group of `instances` (moto starts them InService)."""
    import boto3

    kw = dict(endpoint_url=endpoint, region_name=REGION,
              aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2, asg = boto3.client("ec2", **kw), boto3.client("autoscaling", **kw)
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName=f"{name}-worker",
                               LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.small"})
    group = f"{name}-workers"
    asg.create_auto_scaling_group(AutoScalingGroupName=group, LaunchTemplate={"LaunchTemplateName": f"{name}-worker"},
                                  MinSize=0, MaxSize=max(instances, 10), DesiredCapacity=instances,
                                  AvailabilityZones=[f"{REGION}a"])
    described = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    return group, [i["InstanceId"] for i in described["Instances"]]


def bootstrap(endpoint, name, versioned, visibility, instances=None):
    s3, sqs, iam = clients(endpoint)
    bucket = f"{name}-uploads"
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    dlq_url = sqs.create_queue(QueueName=f"{name}-jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-jobs", Attributes={
        "VisibilityTimeout": str(visibility),
        "ReceiveMessageWaitTimeSeconds": "20",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
        }],
    })})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{
            "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [
                {"Name": "prefix", "Value": "apps/"}, {"Name": "suffix", "Value": ".zip"}]}},
        }],
    })
    role = iam.create_role(RoleName=f"{name}-lambda-exec", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }))["Role"]
    out = {
        "endpoint": endpoint, "region": REGION, "bucket": bucket,
        "queue_url": queue_url, "dlq_url": dlq_url, "role_arn": role["Arn"],
    }
    if instances is not None:
        out["asg_name"], out["instance_ids"] = create_worker_group(endpoint, name, instances)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd in ("start", "stop"):
        sp = sub.add_parser(cmd)
        sp.add_argument("--state", required=True, help="directory for the PID, port and log")
    b = sub.add_parser("bootstrap")
    b.add_argument("--endpoint", required=True)
    b.add_argument("--name", default="auto-lambda", help="prefix of every resource name")
    b.add_argument("--versioned", action="store_true", help="enable bucket versioning")
    b.add_argument("--visibility", type=int, default=60, help="queue visibility timeout, seconds")
    b.add_argument("--asg", type=int, default=None, metavar="N",
                   help="also create a worker Auto Scaling group of N instances (0: an empty group)")
    a = p.parse_args()
    if a.cmd == "start":
        start(a.state)
    elif a.cmd == "stop":
        stop(a.state)
    else:
        bootstrap(a.endpoint, a.name, a.versioned, a.visibility, a.asg)


if __name__ == "__main__":
    main()
