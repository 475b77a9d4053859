"""The patched emulator (dev/moto_patches.py) enforces Lambda's RevisionId and CodeSha256 as AWS
does. Starts it on a free loopback port, drives it with boto3, stops it.

    .venv/bin/python -m unittest discover -s dev -p 'test_moto_patches.py'   (dev/test-infra.sh runs this)
    .venv/bin/python dev/test_moto_patches.py

A few seconds. Nothing is invoked (moto would need Docker for that).
"""
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import uuid
import zipfile

import boto3
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-east-1"
STALE = "The Revision Id provided does not match the latest Revision Id"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def package(body):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", f"def handler(event, context):\n    return {body!r}\n")
    return buf.getvalue()


class PatchedMoto(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.endpoint = f"http://127.0.0.1:{port}"
        cls.log = open(os.devnull, "wb")
        cls.server = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "moto_patches.py"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=cls.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(cls.endpoint + "/moto-api/", timeout=1):
                    break
            except OSError:
                if cls.server.poll() is not None or time.monotonic() > deadline:
                    cls.tearDownClass()
                    raise RuntimeError(f"the patched moto did not answer on {cls.endpoint}")
                time.sleep(0.1)
        kw = dict(endpoint_url=cls.endpoint, region_name=REGION,
                  aws_access_key_id="testing", aws_secret_access_key="testing")
        cls.lam = boto3.client("lambda", **kw)
        cls.role = boto3.client("iam", **kw).create_role(
            RoleName="lambda-exec", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }))["Role"]["Arn"]

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        try:
            cls.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        cls.log.close()

    def create(self, **extra):
        name = f"fn-{uuid.uuid4().hex[:8]}"
        reply = self.lam.create_function(FunctionName=name, Runtime="python3.13", Role=self.role,
                                         Handler="app.handler", Code={"ZipFile": package(0)}, **extra)
        return name, reply

    def revision(self, name):
        return self.lam.get_function(FunctionName=name)["Configuration"]["RevisionId"]

    def assert_refused(self, call, code="PreconditionFailedException", status=412, message=STALE, **kw):
        with self.assertRaises(ClientError) as caught:
            call(**kw)
        err = caught.exception.response
        self.assertEqual(err["Error"]["Code"], code)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], status)
        self.assertIn(message, err["Error"]["Message"])
        # The shape Lambda sends, which the Rust SDK parses by the x-amzn-errortype header.
        self.assertEqual(err["Type"], "User")
        self.assertEqual(err["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"], code)

    def test_every_change_gets_a_new_revision(self):
        name, created = self.create()
        seen = [created["RevisionId"], self.revision(name)]
        self.assertNotEqual(seen[0], seen[1], "the function became Active: a new RevisionId")
        self.assertEqual(self.lam.get_function_configuration(FunctionName=name)["RevisionId"], seen[1])

        reply = self.lam.update_function_code(FunctionName=name, ZipFile=package(1), RevisionId=seen[-1])
        seen += [reply["RevisionId"], self.revision(name)]
        reply = self.lam.update_function_configuration(FunctionName=name, MemorySize=256, RevisionId=seen[-1])
        seen += [reply["RevisionId"], self.revision(name)]
        arn = self.lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        self.lam.tag_resource(Resource=arn, Tags={"k": "v"})
        seen.append(self.revision(name))
        self.lam.untag_resource(Resource=arn, TagKeys=["k"])
        seen.append(self.revision(name))
        self.assertEqual(len(set(seen)), len(seen), f"a RevisionId came back: {seen}")
        self.assertEqual(self.lam.get_function(FunctionName=name)["Configuration"]["MemorySize"], 256)

    def test_the_revision_in_an_update_reply_is_stale_once_the_update_is_done(self):
        # As on AWS (aws/aws-sdk#377): chain the next update on a re-read, not on the reply.
        name, _ = self.create()
        reply = self.lam.update_function_code(FunctionName=name, ZipFile=package(1), RevisionId=self.revision(name))
        self.assert_refused(self.lam.update_function_configuration, FunctionName=name, MemorySize=256,
                            RevisionId=reply["RevisionId"])
        self.lam.update_function_configuration(FunctionName=name, MemorySize=256, RevisionId=self.revision(name))

    def test_a_stale_revision_is_refused_and_the_current_one_accepted(self):
        name, _ = self.create()
        stale = self.revision(name)
        self.lam.update_function_code(FunctionName=name, ZipFile=package(1), RevisionId=stale)
        before = self.lam.get_function(FunctionName=name)["Configuration"]
        self.assert_refused(self.lam.update_function_code, FunctionName=name, ZipFile=package(2), RevisionId=stale)
        self.assert_refused(self.lam.update_function_configuration, FunctionName=name, Timeout=9, RevisionId=stale)
        after = self.lam.get_function(FunctionName=name)["Configuration"]
        self.assertEqual(after["CodeSha256"], before["CodeSha256"], "a refused update changes nothing")
        self.assertEqual(after["Timeout"], before["Timeout"])
        self.assertEqual(after["RevisionId"], before["RevisionId"])

        reply = self.lam.update_function_code(FunctionName=name, ZipFile=package(2), RevisionId=after["RevisionId"])
        self.assertNotEqual(reply["CodeSha256"], before["CodeSha256"])
        self.lam.update_function_configuration(FunctionName=name, Timeout=9, RevisionId=self.revision(name))
        self.assertEqual(self.lam.get_function(FunctionName=name)["Configuration"]["Timeout"], 9)

    def test_no_revision_no_check(self):
        name, _ = self.create()
        self.lam.update_function_code(FunctionName=name, ZipFile=package(1))
        self.lam.update_function_configuration(FunctionName=name, Timeout=5)
        self.assertEqual(self.lam.publish_version(FunctionName=name)["Version"], "1")

    def test_a_dry_run_changes_nothing(self):
        name, _ = self.create()
        current = self.revision(name)
        self.lam.update_function_code(FunctionName=name, ZipFile=package(1), DryRun=True, RevisionId=current)
        self.assertEqual(self.revision(name), current)
        self.assert_refused(self.lam.update_function_code, FunctionName=name, ZipFile=package(1),
                            DryRun=True, RevisionId=str(uuid.uuid4()))

    def test_publish_version_checks_revision_and_code_sha256(self):
        name, _ = self.create()
        stale = self.revision(name)
        code = self.lam.update_function_code(FunctionName=name, ZipFile=package(1), RevisionId=stale)
        self.assert_refused(self.lam.publish_version, FunctionName=name, RevisionId=stale)
        wrong = self.lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"][::-1]
        self.assert_refused(self.lam.publish_version, code="InvalidParameterValueException", status=400,
                            message=f"CodeSHA256 ({wrong}) is different from current CodeSHA256 in $LATEST",
                            FunctionName=name, CodeSha256=wrong)
        self.assertEqual(self.lam.list_versions_by_function(FunctionName=name)["Versions"][1:], [],
                         "nothing published")

        latest = self.revision(name)
        v1 = self.lam.publish_version(FunctionName=name, RevisionId=latest, CodeSha256=code["CodeSha256"])
        self.assertEqual(v1["Version"], "1")
        self.assertNotEqual(v1["RevisionId"], latest, "a version has its own RevisionId")
        self.assertEqual(self.lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["RevisionId"],
                         v1["RevisionId"])
        after = self.revision(name)
        self.assertNotIn(after, (latest, v1["RevisionId"]), "publishing gives $LATEST a new RevisionId")
        # Nothing changed since version 1: the same version, and no new RevisionId.
        again = self.lam.publish_version(FunctionName=name, RevisionId=after)
        self.assertEqual(again["Version"], "1")
        self.assertEqual(self.revision(name), after)

    def test_update_alias_checks_the_alias_revision(self):
        name, _ = self.create()
        self.lam.publish_version(FunctionName=name)
        self.lam.update_function_code(FunctionName=name, ZipFile=package(1))
        self.lam.publish_version(FunctionName=name)
        created = self.lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        self.assertNotEqual(created["RevisionId"], self.revision(name))
        moved = self.lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                                      RevisionId=created["RevisionId"])
        self.assertNotEqual(moved["RevisionId"], created["RevisionId"])
        self.assertEqual(self.lam.get_alias(FunctionName=name, Name="live")["RevisionId"], moved["RevisionId"])
        self.assert_refused(self.lam.update_alias, FunctionName=name, Name="live", FunctionVersion="1",
                            RevisionId=created["RevisionId"])
        self.assertEqual(self.lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"], "2")

    def test_a_statement_id_is_unique_per_policy(self):
        name, _ = self.create()
        self.lam.publish_version(FunctionName=name)
        self.lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
        grant = dict(FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
                     Principal="*", FunctionUrlAuthType="NONE")
        self.lam.add_permission(Qualifier="live", **grant)
        self.assert_refused(self.lam.add_permission, code="ResourceConflictException", status=409,
                            message="The statement id (public) provided already exists",
                            Qualifier="live", **grant)
        # The function's own policy is another policy: the same id is free there.
        self.lam.add_permission(**grant)
        # Removed, the id is free again.
        self.lam.remove_permission(FunctionName=name, Qualifier="live", StatementId="public")
        self.lam.add_permission(Qualifier="live", **grant)

    def test_complete_lifecycle_action_validates_group_hook_and_instance(self):
        # moto has no CompleteLifecycleAction; the patch validates it as AWS does.
        kw = dict(endpoint_url=self.endpoint, region_name=REGION,
                  aws_access_key_id="testing", aws_secret_access_key="testing")
        ec2, asg = boto3.client("ec2", **kw), boto3.client("autoscaling", **kw)
        ami = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.create_launch_template(LaunchTemplateName="hooked", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.small"})
        asg.create_auto_scaling_group(AutoScalingGroupName="g", LaunchTemplate={"LaunchTemplateName": "hooked"},
                                      MinSize=0, MaxSize=2, DesiredCapacity=1, AvailabilityZones=[f"{REGION}a"])
        asg.put_lifecycle_hook(LifecycleHookName="ready", AutoScalingGroupName="g",
                               LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING", DefaultResult="ABANDON")
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]
        instance = group["Instances"][0]["InstanceId"]
        asg.complete_lifecycle_action(AutoScalingGroupName="g", LifecycleHookName="ready",
                                      InstanceId=instance, LifecycleActionResult="CONTINUE")
        for hook, iid in (("nope", instance), ("ready", "i-00000000000000000")):
            with self.assertRaises(ClientError) as e:
                asg.complete_lifecycle_action(AutoScalingGroupName="g", LifecycleHookName=hook,
                                              InstanceId=iid, LifecycleActionResult="CONTINUE")
            self.assertEqual(e.exception.response["Error"]["Code"], "ValidationError")

    def test_of_racing_updates_with_one_revision_exactly_one_lands(self):
        name, _ = self.create()
        current = self.revision(name)
        outcomes = []

        def update(i):
            try:
                self.lam.update_function_code(FunctionName=name, ZipFile=package(10 + i), RevisionId=current)
                outcomes.append("landed")
            except ClientError as e:
                outcomes.append(e.response["Error"]["Code"])

        threads = [threading.Thread(target=update, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(outcomes), ["PreconditionFailedException"] * 7 + ["landed"])


if __name__ == "__main__":
    unittest.main()

