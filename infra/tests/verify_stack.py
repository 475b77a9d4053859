#!/usr/bin/env python3
"""Checks, through the AWS API (moto in dev/test-infra.sh), that the stack infra/ applied is
there and wired together: bucket -> queue -> DLQ, IAM scoping, launch templates, scaling,
deployment events (bus, topic), alarms, dashboard, logs.

    verify_stack.py stack --endpoint URL --outputs outputs.json [--env-dir DIR]
        every check; with --env-dir, also writes worker.env, publisher.env and the worker
        unit's drop-in (worker-50-stack.conf) exactly as the
        launch templates' user data would write them on an instance
    verify_stack.py deploy --endpoint URL --outputs outputs.json --deploy DIR
        uploads DIR zipped under the upload prefix; a running worker must deploy it as
        <function_prefix><DIR name> with the stack's execution role, and report it

Exits non-zero with one line per failed check. Run it with the project's venv (boto3, PyYAML).
"""
import argparse
import base64
import fnmatch
import json
import os
import sys

import boto3
import yaml

REGION = os.environ.get("AWS_REGION", "us-east-1")
failures = []


def check(cond, what):
    print(f"  {'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        failures.append(what)
    return cond


def listify(x):
    return x if isinstance(x, list) else [x]


# --- A small IAM evaluator: Allow statements only, conditions reported, not evaluated ----------


def allows(policy, action, resource):
    """True if some Allow statement of the policy matches the action and the resource."""
    for st in policy["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        actions = listify(st.get("Action", []))
        resources = listify(st.get("Resource", []))
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        ):
            return True
    return False


def statement_for(policy, action):
    return [st for st in policy["Statement"] if action in listify(st.get("Action", []))]


def conditions_of(policy, action, resource):
    """The Condition blocks of the Allow statements that grant the action on the resource."""
    out = []
    for st in policy["Statement"]:
        if st.get("Effect") == "Allow" and allows({"Statement": [st]}, action, resource):
            out.append(st.get("Condition", {}))
    return out


def role_policy(iam, role):
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    check(len(names) == 1, f"role {role} has one inline policy ({names})")
    doc = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    return json.loads(doc) if isinstance(doc, str) else doc


def user_data(ec2, template_id):
    version = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Latest"])[
        "LaunchTemplateVersions"
    ][0]
    data = version["LaunchTemplateData"]
    text = base64.b64decode(data["UserData"]).decode()
    return data, text


def cloud_config(text):
    check(text.startswith("#cloud-config\n"), "user data is a #cloud-config document")
    return yaml.safe_load(text)


def written(cfg, path):
    files = [f for f in cfg.get("write_files", []) if f["path"] == path]
    check(len(files) == 1, f"user data writes {path}")
    return files[0]["content"] if files else ""


def env_of(content):
    out = {}
    for line in content.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def verify_stack(a, out):
    kw = dict(endpoint_url=a.endpoint, region_name=REGION)
    s3, sqs, iam = (boto3.client(s, **kw) for s in ("s3", "sqs", "iam"))
    ec2, asg, cw, logs = (boto3.client(s, **kw) for s in ("ec2", "autoscaling", "cloudwatch", "logs"))
    events, sns = (boto3.client(s, **kw) for s in ("events", "sns"))

    bucket = out["bucket_name"]
    account = out["queue_arn"].split(":")[4]
    prefix = out["function_prefix"]
    exec_role_arn = out["lambda_execution_role_arn"]
    queue_url, dlq_url = out["queue_url"], out["dlq_url"]
    queue_arn, dlq_arn = out["queue_arn"], out["dlq_arn"]
    queue_name, dlq_name = queue_arn.split(":")[-1], dlq_arn.split(":")[-1]
    worker_asg, publisher_asg = out["worker_asg_name"], out["publisher_asg_name"]
    ns = out["metric_namespace"]

    print("bucket")
    check(s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", "versioning is enabled")
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    check(enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms"), "default encryption is on")
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    check(all(pab.values()) and len(pab) == 4, f"all four public access blocks are on ({pab})")
    own = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
    check(own == "BucketOwnerEnforced", "ACLs are disabled (BucketOwnerEnforced)")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    by_prefix = {r.get("Filter", {}).get("Prefix", r.get("Prefix")): r for r in rules}
    for p in (out["status_prefix"], "artifacts/", "cache/"):
        r = by_prefix.get(p)
        check(r is not None and r["Status"] == "Enabled" and r.get("Expiration", {}).get("Days", 0) > 0,
              f"lifecycle rule expires {p}")
    check(any("AbortIncompleteMultipartUpload" in r for r in rules), "incomplete multipart uploads are aborted")
    check(any("NoncurrentVersionExpiration" in r and not r.get("Filter", {}).get("Prefix") for r in rules),
          "old versions expire bucket-wide")
    bpol = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    check(any(st["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(st.get("Condition", {}))
              for st in bpol["Statement"]), "bucket policy denies plain HTTP")

    print("notification")
    qcs = s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
    check(len(qcs) == 1, "exactly one queue notification")
    if qcs:
        qc = qcs[0]
        check(qc["QueueArn"] == queue_arn, "it targets the job queue")
        check(qc["Events"] == ["s3:ObjectCreated:*"], "on every ObjectCreated event")
        fr = {r["Name"].lower(): r["Value"] for r in qc["Filter"]["Key"]["FilterRules"]}
        check(fr == {"prefix": out["upload_prefix"], "suffix": ".zip"}, f"filtered to {out['upload_prefix']}*.zip ({fr})")

    print("queues")
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
    check(redrive.get("deadLetterTargetArn") == dlq_arn, "redrive policy targets the DLQ")
    check(int(redrive.get("maxReceiveCount", 0)) >= 1, f"maxReceiveCount is {redrive.get('maxReceiveCount')}")
    check(int(attrs["VisibilityTimeout"]) >= 900 + 300, f"visibility timeout {attrs['VisibilityTimeout']} s covers the longest build plus margin")
    check(attrs["ReceiveMessageWaitTimeSeconds"] == "20", "long polling (20 s)")
    check(attrs.get("SqsManagedSseEnabled") == "true", "encrypted at rest (SSE-SQS)")
    qpol = json.loads(attrs.get("Policy", '{"Statement": []}'))
    allow = [st for st in qpol["Statement"] if st["Effect"] == "Allow"]
    check(len(allow) == 1, "the queue policy has one Allow statement")
    if allow:
        st = allow[0]
        check(st["Principal"] == {"Service": "s3.amazonaws.com"}, "only S3 may send")
        check(listify(st["Action"]) == ["sqs:SendMessage"], "and only SendMessage")
        check(st["Condition"].get("ArnEquals", {}).get("aws:SourceArn") == f"arn:aws:s3:::{bucket}",
              "only from this bucket (aws:SourceArn)")
        check(st["Condition"].get("StringEquals", {}).get("aws:SourceAccount") == account,
              "only from this account (aws:SourceAccount)")
    dattrs = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    check(int(dattrs["MessageRetentionPeriod"]) >= int(attrs["MessageRetentionPeriod"]),
          "the DLQ keeps messages at least as long as the queue")

    print("IAM: execution role")
    exec_role = iam.get_role(RoleName=exec_role_arn.split("/")[-1])["Role"]
    trust = exec_role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    check([st["Principal"] for st in trust["Statement"]] == [{"Service": "lambda.amazonaws.com"}],
          "only Lambda may assume the execution role")

    print("IAM: worker")
    worker_role = out["worker_role_arn"].split("/")[-1]
    wp = role_policy(iam, worker_role)
    fn = f"arn:aws:lambda:{REGION}:{account}:function"
    deploy_actions = ["lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                      "lambda:PublishVersion", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
                      "lambda:CreateAlias", "lambda:UpdateAlias", "lambda:GetAlias", "lambda:TagResource", "lambda:UntagResource",
                      "lambda:ListVersionsByFunction"]
    for action in deploy_actions:
        check(allows(wp, action, f"{fn}:{prefix}hello"), f"{action} on function:{prefix}hello")
    check(allows(wp, "lambda:UpdateAlias", f"{fn}:{prefix}hello:live"), "aliases of prefixed functions")
    for action in ("lambda:UpdateFunctionCode", "lambda:CreateFunction", "lambda:GetFunction"):
        check(not allows(wp, action, f"{fn}:billing-api"), f"no {action} outside the prefix")
    check(not allows(wp, "lambda:DeleteFunction", f"{fn}:{prefix}hello"), "no DeleteFunction")
    for action in ("lambda:GetFunctionUrlConfig", "lambda:CreateFunctionUrlConfig", "lambda:UpdateFunctionUrlConfig",
                   "lambda:DeleteFunctionUrlConfig", "lambda:GetPolicy", "lambda:AddPermission", "lambda:RemovePermission"):
        check(allows(wp, action, f"{fn}:{prefix}hello:live"), f"{action} on an alias of function:{prefix}hello")
        check(allows(wp, action, f"{fn}:{prefix}hello"), f"{action} on function:{prefix}hello")
        check(not allows(wp, action, f"{fn}:billing-api:live"), f"no {action} outside the prefix")
    add = conditions_of(wp, "lambda:AddPermission", f"{fn}:{prefix}hello:live")
    check(bool(add) and all(c.get("StringEquals", {}).get("lambda:Principal") == "*" for c in add),
          f"AddPermission only for the public principal \"*\" (a URL with auth NONE): {add}")
    check(not allows(wp, "lambda:DeleteFunction", f"{fn}:{prefix}hello:live"), "no DeleteFunction on aliases")
    check(not allows(wp, "lambda:PutFunctionConcurrency", f"{fn}:{prefix}hello"), "no other Lambda action")
    alarm = f"arn:aws:cloudwatch:{REGION}:{account}:alarm"
    check(allows(wp, "cloudwatch:DescribeAlarms", f"{alarm}:{prefix}hello-live-errors"),
          "DescribeAlarms on this account's alarms (the ones apps name in lambda.toml)")
    if allows(wp, "cloudwatch:DescribeAlarms", "*"):
        print("  note DescribeAlarms on * (deploy_alarms_composite: composite alarms answer only that)")
    else:
        check(not allows(wp, "cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{REGION}:999999999999:alarm:x"),
              "no DescribeAlarms in another account")
        check(not allows(wp, "cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:eu-north-1:{account}:alarm:x"),
              "no DescribeAlarms in another region")
    check(not any(a in ("cloudwatch:SetAlarmState", "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms")
                  for st in wp["Statement"] for a in listify(st["Action"])), "cannot change alarms")
    check(not any(a.endswith(":*") or a == "*" for st in wp["Statement"] for a in listify(st["Action"])),
          "no wildcard actions")
    check(allows(wp, "iam:PassRole", exec_role_arn), "iam:PassRole on the execution role")
    check(not allows(wp, "iam:PassRole", out["worker_role_arn"]), "no iam:PassRole on its own role")
    check(not allows(wp, "iam:PassRole", f"arn:aws:iam::{account}:role/admin"), "no iam:PassRole on other roles")
    pr = statement_for(wp, "iam:PassRole")
    check(bool(pr) and pr[0].get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService") == "lambda.amazonaws.com",
          "PassRole only to lambda.amazonaws.com")
    b = f"arn:aws:s3:::{bucket}"
    check(allows(wp, "s3:GetObject", f"{b}/apps/x.zip") and allows(wp, "s3:GetObjectVersion", f"{b}/apps/x.zip"),
          "reads uploads (apps/)")
    check(not allows(wp, "s3:PutObject", f"{b}/apps/x.zip"), "cannot write apps/ (could start jobs)")
    check(allows(wp, "s3:PutObject", f"{b}/status/apps/x.zip/v.json"), "writes status/")
    check(allows(wp, "s3:PutObject", f"{b}/status/apps/x.zip/v.log"), "writes the full build log beside the report (status/<key>/<id>.log)")
    check(allows(wp, "s3:PutObject", f"{b}/artifacts/p.zip"), "writes artifacts/")
    check(allows(wp, "s3:GetObject", f"{b}/status/apps/x.zip/v.json"), "reads status reports (a shift's steps update them)")
    check(not allows(wp, "s3:GetObject", f"{b}/status/apps/x.zip/v.log"), "does not read build logs")
    check(not allows(wp, "s3:GetObjectVersion", f"{b}/status/apps/x.zip/v.json"), "no GetObjectVersion on status/")
    check(not allows(wp, "s3:GetObject", "arn:aws:s3:::other-bucket/apps/x.zip"), "no other bucket")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"):
        check(allows(wp, action, queue_arn), f"{action} on its queue")
        check(not allows(wp, action, dlq_arn), f"no {action} on the DLQ")
    check(allows(wp, "sqs:SendMessage", queue_arn), "sqs:SendMessage on its queue (the delayed steps of a traffic shift)")
    check(not allows(wp, "sqs:SendMessage", dlq_arn), "no sqs:SendMessage on the DLQ")
    check(not allows(wp, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{account}:other"), "no sqs:SendMessage on other queues")
    bus_arn, topic_arn = out.get("events_bus_arn"), out.get("events_topic_arn")
    if bus_arn:
        check(allows(wp, "events:PutEvents", bus_arn), f"events:PutEvents on {bus_arn}")
        check(not allows(wp, "events:PutEvents", f"arn:aws:events:{REGION}:{account}:event-bus/other"),
              "no PutEvents on another bus")
        if not bus_arn.endswith("/default"):
            check(not allows(wp, "events:PutEvents", f"arn:aws:events:{REGION}:{account}:event-bus/default"),
                  "no PutEvents on the default bus")
        pe = conditions_of(wp, "events:PutEvents", bus_arn)
        check(bool(pe) and all(c.get("StringEquals", {}).get("events:source") == "auto-lambda" for c in pe),
              f"PutEvents only with source auto-lambda: {pe}")
    else:
        check(not any(a.startswith("events:") for st in wp["Statement"] for a in listify(st["Action"])),
              "no EventBridge rights without a bus")
    if topic_arn:
        check(allows(wp, "sns:Publish", topic_arn), f"sns:Publish on {topic_arn}")
        check(not allows(wp, "sns:Publish", f"arn:aws:sns:{REGION}:{account}:other"), "no Publish to another topic")
    else:
        check(not any(a.startswith("sns:") for st in wp["Statement"] for a in listify(st["Action"])),
              "no SNS rights without a topic")
    pmd = statement_for(wp, "cloudwatch:PutMetricData")
    check(bool(pmd) and pmd[0].get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace") == ns,
          f"PutMetricData only in namespace {ns}")
    own_asg = f"arn:aws:autoscaling:{REGION}:{account}:autoScalingGroup:0123-uuid:autoScalingGroupName/{worker_asg}"
    other_asg = f"arn:aws:autoscaling:{REGION}:{account}:autoScalingGroup:0123-uuid:autoScalingGroupName/other"
    check(allows(wp, "autoscaling:SetInstanceProtection", own_asg), "SetInstanceProtection on its own group")
    check(not allows(wp, "autoscaling:SetInstanceProtection", other_asg), "not on another group")
    star = {a for st in wp["Statement"] if "*" in listify(st.get("Resource", [])) for a in listify(st["Action"])}
    check(star <= {"cloudwatch:PutMetricData", "autoscaling:DescribeAutoScalingInstances", "cloudwatch:DescribeAlarms"},
          f"Resource * only for actions without resource scoping ({sorted(star)})")

    print("IAM: publisher")
    pp = role_policy(iam, out["publisher_role_arn"].split("/")[-1])
    check(allows(pp, "sqs:GetQueueAttributes", queue_arn), "GetQueueAttributes on the queue")
    check(not allows(pp, "sqs:ReceiveMessage", queue_arn), "cannot receive jobs")
    check(allows(pp, "autoscaling:DescribeAutoScalingGroups", "*"), "DescribeAutoScalingGroups")
    pmd = statement_for(pp, "cloudwatch:PutMetricData")
    check(bool(pmd) and pmd[0].get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace") == ns,
          f"PutMetricData only in namespace {ns}")
    check(not any(a.startswith(("lambda:", "iam:", "s3:")) for st in pp["Statement"] for a in listify(st["Action"])),
          "no Lambda, IAM or S3 rights")

    print("launch templates")
    for role, lt_id, unit, env_path in (
        ("worker", out["worker_launch_template_id"], "auto-lambda-worker.service", "/etc/auto-lambda/worker.env"),
        ("publisher", out["publisher_launch_template_id"], "queue-metric-publisher.service", "/etc/auto-lambda/publisher.env"),
    ):
        data, text = user_data(ec2, lt_id)
        md = data.get("MetadataOptions", {})
        check(md.get("HttpTokens") == "required", f"{role}: IMDSv2 required")
        check(md.get("HttpPutResponseHopLimit") == 1, f"{role}: IMDS hop limit 1 (containers cannot reach it)")
        check(md.get("HttpEndpoint", "enabled") == "enabled", f"{role}: IMDS endpoint on (the instance's own credentials)")
        check(data["IamInstanceProfile"]["Arn"].endswith(f"/{out[f'{role}_role_arn'].split('/')[-1]}"),
              f"{role}: its own instance profile")
        check(data.get("ImageId") == out["ami_id"], f"{role}: the AMI {out['ami_id']}")
        ebs = data["BlockDeviceMappings"][0]["Ebs"]
        check(ebs.get("Encrypted") is True, f"{role}: encrypted root volume")
        nis = data.get("NetworkInterfaces", [])
        check(bool(nis) and nis[0].get("AssociatePublicIpAddress") in (False, None), f"{role}: no public IP")
        cfg = cloud_config(text)
        env_text = written(cfg, env_path)
        check(["systemctl", "enable", "--now", unit] in cfg.get("runcmd", []), f"{role}: cloud-init enables {unit}")
        env = env_of(env_text)
        if role == "worker":
            check(env.get("AUTO_LAMBDA_QUEUE_URL") == queue_url, "worker.env: AUTO_LAMBDA_QUEUE_URL")
            check(env.get("AUTO_LAMBDA_ROLE_ARN") == exec_role_arn, "worker.env: AUTO_LAMBDA_ROLE_ARN")
            check(env.get("AUTO_LAMBDA_FUNCTION_PREFIX") == prefix, "worker.env: AUTO_LAMBDA_FUNCTION_PREFIX")
            check(env.get("AUTO_LAMBDA_CACHE_BUCKET") == bucket, "worker.env: AUTO_LAMBDA_CACHE_BUCKET")
            check(env.get("AUTO_LAMBDA_CACHE_PREFIX") == "cache/", "worker.env: AUTO_LAMBDA_CACHE_PREFIX (the prefix IAM grants)")
            check(env.get("AUTO_LAMBDA_ARTIFACT_PREFIX") == "artifacts/", "worker.env: AUTO_LAMBDA_ARTIFACT_PREFIX (the prefix IAM grants)")
            check(int(env.get("AUTO_LAMBDA_CACHE_MAX_BYTES", "0")) > 0, "worker.env: a bounded local cache")
            check(env.get("AUTO_LAMBDA_EVENTS_BUS") == out.get("events_bus_name"),
                  f"worker.env: AUTO_LAMBDA_EVENTS_BUS is the stack's bus ({env.get('AUTO_LAMBDA_EVENTS_BUS')})")
            check(env.get("AUTO_LAMBDA_EVENTS_TOPIC") == out.get("events_topic_arn"),
                  f"worker.env: AUTO_LAMBDA_EVENTS_TOPIC is the stack's topic ({env.get('AUTO_LAMBDA_EVENTS_TOPIC')})")
            grace = int(env.get("AUTO_LAMBDA_SHUTDOWN_GRACE_SECS", "0"))
            dropin = written(cfg, "/etc/systemd/system/auto-lambda-worker.service.d/50-stack.conf")
            stop = [int(l.split("=", 1)[1]) for l in dropin.splitlines() if l.startswith("TimeoutStopSec=")]
            check(bool(stop) and stop[0] > grace, f"TimeoutStopSec {stop} exceeds the drain grace {grace}")
        else:
            check(env.get("QMP_QUEUE_URL") == queue_url, "publisher.env: QMP_QUEUE_URL")
            check(env.get("QMP_NAMESPACE") == ns, "publisher.env: QMP_NAMESPACE")
            check(env.get("QMP_ASG_NAME") == worker_asg, "publisher.env: QMP_ASG_NAME names the worker group")
        agent = json.loads(written(cfg, "/etc/auto-lambda/cloudwatch-agent.json"))
        group = agent["logs"]["logs_collected"]["files"]["collect_list"][0]["log_group_name"]
        check(group == out["log_groups"][role], f"{role}: the CloudWatch agent ships to {group}")
        if a.env_dir:
            with open(os.path.join(a.env_dir, f"{role}.env"), "w") as f:
                f.write(env_text)
            if role == "worker":
                with open(os.path.join(a.env_dir, "worker-50-stack.conf"), "w") as f:
                    f.write(dropin)

    print("auto scaling")
    groups = {g["AutoScalingGroupName"]: g for g in asg.describe_auto_scaling_groups(
        AutoScalingGroupNames=[worker_asg, publisher_asg])["AutoScalingGroups"]}
    wg = groups.get(worker_asg, {})
    check(wg.get("MinSize") == 0, "worker group min size 0 (scales to nothing)")
    check(wg.get("MaxSize", 0) >= 1, f"worker group max size {wg.get('MaxSize')}")
    check(wg.get("LaunchTemplate", {}).get("LaunchTemplateId") == out["worker_launch_template_id"],
          "worker group uses the worker launch template")
    pg = groups.get(publisher_asg, {})
    check((pg.get("MinSize"), pg.get("MaxSize"), pg.get("DesiredCapacity")) == (1, 1, 1), "publisher group is exactly 1")
    policies = asg.describe_policies(AutoScalingGroupName=worker_asg)["ScalingPolicies"]
    tt = [p for p in policies if p["PolicyType"] == "TargetTrackingScaling"]
    check(len(tt) == 1, "one target-tracking policy on the worker group")
    if tt:
        spec = tt[0]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]
        dims = {d["Name"]: d["Value"] for d in spec.get("Dimensions", [])}
        check((spec["Namespace"], spec["MetricName"]) == (ns, "WorkPerInstance"), f"it tracks {ns}/WorkPerInstance")
        check(dims == {"QueueName": queue_name, "AutoScalingGroupName": worker_asg},
              f"for this queue and group ({dims})")
        check(tt[0]["TargetTrackingConfiguration"]["TargetValue"] > 0, "with a positive target")
    pool = asg.describe_warm_pool(AutoScalingGroupName=worker_asg).get("WarmPoolConfiguration") or {}
    check(pool.get("PoolState") == "Stopped", f"a warm pool of stopped workers ({pool})")
    check(pool.get("InstanceReusePolicy", {}).get("ReuseOnScaleIn") is True, "scale-in returns workers to it")
    hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=worker_asg)["LifecycleHooks"]
    ready = [h for h in hooks if h["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"]
    check(len(ready) == 1 and ready[0]["DefaultResult"] == "ABANDON",
          f"a launch hook the worker completes when ready, abandoning the instance otherwise ({ready})")
    if ready:
        check(f"AUTO_LAMBDA_LAUNCH_LIFECYCLE_HOOK={ready[0]['LifecycleHookName']}" in out["worker_environment"],
              "the worker is told the hook's name")
    step = [p for p in policies if p["PolicyType"] == "StepScaling"]
    check(len(step) == 1, "a step policy adds the first worker")

    print("deployment events")
    if out.get("events_bus_name"):
        try:
            bus = events.describe_event_bus(Name=out["events_bus_name"])
            check(bus.get("Arn") == out["events_bus_arn"], f"the bus {out['events_bus_name']} exists ({bus.get('Arn')})")
        except events.exceptions.ResourceNotFoundException:
            check(False, f"the bus {out['events_bus_name']} exists")
    else:
        print("  skip bus (events_bus_enabled = false)")
    if out.get("events_topic_arn"):
        try:
            tattrs = sns.get_topic_attributes(TopicArn=out["events_topic_arn"])["Attributes"]
            check(tattrs.get("TopicArn") == out["events_topic_arn"], f"the topic {out['events_topic_arn']} exists")
            key = tattrs.get("KmsMasterKeyId", "")
            check(bool(key), f"the topic is encrypted ({key})")
            if key and not key.startswith("alias/aws/"):
                check(allows(wp, "kms:GenerateDataKey", key), "the worker may use the topic's own KMS key")
        except sns.exceptions.NotFoundException:
            check(False, f"the topic {out['events_topic_arn']} exists")
    else:
        print("  skip topic (events_topic_enabled = false)")

    print("alarms")
    alarms = {a_["AlarmName"]: a_ for a_ in cw.describe_alarms()["MetricAlarms"]}
    for name in out["alarm_names"]:
        check(name in alarms, f"alarm {name} exists")
    dlq_alarms = [x for x in alarms.values() if x.get("MetricName") == "ApproximateNumberOfMessagesVisible"
                  and {"Name": "QueueName", "Value": dlq_name} in x.get("Dimensions", [])]
    check(len(dlq_alarms) == 1 and dlq_alarms[0]["Threshold"] == 0, "DLQ not empty alarm")
    check(any(x.get("MetricName") == "ApproximateAgeOfOldestMessage" for x in alarms.values()), "oldest message age alarm")
    check(any(x.get("MetricName") == "Jobs" and {"Name": "Outcome", "Value": "rolled-back"} in x.get("Dimensions", [])
              for x in alarms.values()), "rolled-back deploys alarm")
    if out.get("canary_alarm_name"):
        canary = alarms.get(out["canary_alarm_name"], {})
        dims = {d["Name"]: d["Value"] for d in canary.get("Dimensions", [])}
        fn_name = dims.get("FunctionName", "")
        check((canary.get("Namespace"), canary.get("MetricName"), canary.get("Period")) == ("AWS/Lambda", "Errors", 60),
              f"canary alarm {out['canary_alarm_name']}: AWS/Lambda Errors per 60 s")
        check(fn_name.startswith(prefix) and dims.get("Resource", "").startswith(f"{fn_name}:"),
              f"canary alarm on a prefixed function's alias ({dims})")
        check(allows(wp, "cloudwatch:DescribeAlarms", canary.get("AlarmArn", "")), "the worker may read the canary alarm")
    else:
        print("  skip canary alarm (canary_alarm_function = null)")
    check(any(x.get("MetricName") == "Jobs" and {"Name": "Outcome", "Value": "failed"} in x.get("Dimensions", [])
              for x in alarms.values()), "failed deploys alarm")
    wake = [x for x in alarms.values() if step and step[0]["PolicyARN"] in x.get("AlarmActions", [])]
    check(len(wake) == 1, "the scale-from-zero alarm triggers the step policy")

    print("dashboard and logs")
    if out.get("dashboard_name"):
        body = cw.get_dashboard(DashboardName=out["dashboard_name"])["DashboardBody"]
        check(json.loads(body) == json.loads(out["dashboard_body"]), "dashboard body is the module's JSON")
    else:
        print("  skip dashboard (enable_dashboard = false)")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/")["logGroups"]}
    for role, name in out["log_groups"].items():
        check(groups.get(name, {}).get("retentionInDays", 0) > 0, f"log group {name} with retention")


def deploy_example(a, out):
    """Uploads an app directory under the upload prefix, waits for the worker's status report and
    checks the function it deployed. The report is found by listing status/<key>/, because moto's
    events carry no versionId even in a versioned bucket (the worker then names the report after
    the ETag)."""
    import time

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dev"))
    from upload import zip_dir  # dev/upload.py: the same zip the demo uploads

    kw = dict(endpoint_url=a.endpoint, region_name=REGION)
    s3, lam = boto3.client("s3", **kw), boto3.client("lambda", **kw)
    bucket = out["bucket_name"]
    name = a.name or os.path.basename(os.path.abspath(a.deploy))
    key = f"{out['upload_prefix']}{name}.zip"
    listeners = listen_for_events(out, kw) if a.expect_events else {}
    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key=key, Body=zip_dir(a.deploy))
    print(f"uploaded s3://{bucket}/{key}; waiting for a report under {out['status_prefix']}{key}/")
    report = None
    while time.monotonic() - started < a.timeout and report is None:
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"{out['status_prefix']}{key}/").get("Contents", []):
            if not obj["Key"].endswith(".json"):
                continue  # the full build log, <id>.log, lives beside the report
            r = json.load(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"])
            if not r.get("will_retry"):
                report = r
        time.sleep(0.1)
    if not check(report is not None, f"a status report within {a.timeout:.0f} s"):
        return
    print(f"  report: outcome {report['outcome']}, function {report.get('function_name')}, "
          f"version {report.get('version')}, {time.monotonic() - started:.1f} s after the upload")
    check(report["outcome"] == "deployed", f"outcome deployed ({report.get('error')})")
    if report["outcome"] != "deployed" and report.get("build_log_tail"):
        print("  build log tail:\n    " + report["build_log_tail"][-3000:].replace("\n", "\n    "))
    function = report.get("function_name") or ""
    check(function == f"{out['function_prefix']}{name}", f"function named {out['function_prefix']}{name}")
    if report["outcome"] != "deployed":
        return
    if a.built_on:
        check(report.get("built_on") == a.built_on,
              f"dependencies installed on the {a.built_on} (built_on: {report.get('built_on')})")
    fn = lam.get_function(FunctionName=function)["Configuration"]
    check(fn["Role"] == out["lambda_execution_role_arn"], "runs as the stack's execution role")
    check(fn["CodeSha256"] == report.get("code_sha256"), "its CodeSha256 is the package the worker built")
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=function)["Versions"]]
    check(report.get("version") in versions, f"version {report.get('version')} was published ({versions})")
    if report.get("build_log"):
        log_uri = report["build_log"]
        prefix = f"s3://{bucket}/{out['status_prefix']}{key}/"
        if check(log_uri.startswith(prefix) and log_uri.endswith(".log"),
                 f"the full build log is stored beside the report ({log_uri})"):
            head = s3.head_object(Bucket=bucket, Key=log_uri[len(f"s3://{bucket}/"):])
            check(head["ContentLength"] > 0, f"and is not empty ({head['ContentLength']} bytes)")
    else:
        print("  (no build log: nothing was built)")
    if listeners:
        check_events(listeners, kw, function)


def listen_for_events(out, kw):
    """Test queues that receive the stack's deployment events: one subscribed to the SNS topic,
    one the target of a rule on the EventBridge bus (matching what the README tells users to
    match). Returns {"topic"|"bus": (queue URL, cleanup)}."""
    sqs = boto3.client("sqs", **kw)
    tag = f"verify-{os.getpid()}"
    listeners = {}

    def queue(kind):
        url = sqs.create_queue(QueueName=f"{tag}-{kind}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    if out.get("events_topic_arn"):
        sns = boto3.client("sns", **kw)
        url, arn = queue("topic")
        sub = sns.subscribe(TopicArn=out["events_topic_arn"], Protocol="sqs", Endpoint=arn,
                            Attributes={"RawMessageDelivery": "false"}, ReturnSubscriptionArn=True)["SubscriptionArn"]
        listeners["topic"] = (url, lambda url=url: (sns.unsubscribe(SubscriptionArn=sub), sqs.delete_queue(QueueUrl=url)))
    if out.get("events_bus_name"):
        ev = boto3.client("events", **kw)
        bus = out["events_bus_name"]
        url, arn = queue("bus")
        ev.put_rule(Name=tag, EventBusName=bus, State="ENABLED", EventPattern=json.dumps(
            {"source": ["auto-lambda"], "detail-type": ["auto-lambda Deployment State Change"]}))
        ev.put_targets(Rule=tag, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

        def cleanup(url=url):
            # A rule left on the stack's bus would stop terraform destroy from deleting the bus.
            ev.remove_targets(Rule=tag, EventBusName=bus, Ids=["q"])
            ev.delete_rule(Name=tag, EventBusName=bus)
            sqs.delete_queue(QueueUrl=url)

        listeners["bus"] = (url, cleanup)
    return listeners


def check_events(listeners, kw, function):
    """Each listener got a `deployed` event for the function: the worker's environment named the
    stack's bus and topic, and its role may publish there."""
    import time

    sqs = boto3.client("sqs", **kw)
    for kind, (url, cleanup) in listeners.items():
        found, seen, deadline = None, [], time.monotonic() + 20
        while found is None and time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                body = json.loads(m["Body"])
                if kind == "topic":
                    attrs = {k: v.get("Value") for k, v in body.get("MessageAttributes", {}).items()}
                    detail = json.loads(body.get("Message", "{}"))
                    seen.append((attrs.get("event"), body.get("Subject")))
                    if attrs.get("event") == "deployed" and attrs.get("function") == function \
                            and detail.get("function_name") == function:
                        found = body.get("Subject")
                else:
                    detail = body.get("detail", {})
                    seen.append((detail.get("event"), body.get("source"), body.get("detail-type")))
                    if body.get("source") == "auto-lambda" and detail.get("event") == "deployed" \
                            and detail.get("function_name") == function:
                        found = body.get("detail-type")
        check(found is not None, f"a deployed event for {function} reached the {kind} ({found or seen})")
        cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["stack", "deploy"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--outputs", required=True, help="`terraform output -json` saved to a file")
    p.add_argument("--env-dir", help="write worker.env and publisher.env from the user data here")
    p.add_argument("--deploy", metavar="DIR", help="for `deploy`: the app directory to upload")
    p.add_argument("--timeout", type=float, default=60, help="for `deploy`: seconds to wait for the report")
    p.add_argument("--name", help="for `deploy`: upload as NAME.zip (default: the directory's name)")
    p.add_argument("--expect-events", action="store_true",
                   help="for `deploy`: the worker must announce the deploy on the stack's bus and topic")
    p.add_argument("--built-on", choices=["worker", "container"],
                   help="for `deploy`: where the report must say the dependencies were installed")
    a = p.parse_args()
    with open(a.outputs) as f:
        out = {k: v["value"] for k, v in json.load(f).items()}
    if a.what == "stack":
        verify_stack(a, out)
    else:
        deploy_example(a, out)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed:\n  " + "\n  ".join(failures))
    print("all checks passed")


if __name__ == "__main__":
    main()
