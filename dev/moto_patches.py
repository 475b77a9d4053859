#!/usr/bin/env python3
"""moto's server, with Lambda's RevisionId and CodeSha256 preconditions enforced as AWS does.

    .venv/bin/python dev/moto_patches.py -H 127.0.0.1 -p PORT    (the arguments of moto_server)

testkit (`Moto::start`) and `dev/localaws.py start` run the emulator this way. moto 5.2.5 keeps
one RevisionId per function for ever and ignores the one sent with an update, so two workers
racing on one function could both win. This module patches moto's Lambda classes in this
process, then runs moto's own server (`moto.server.main`). With the patches:

- A function gets a new RevisionId on every change to `$LATEST`: CreateFunction,
  UpdateFunctionCode (not with DryRun), UpdateFunctionConfiguration, TagResource,
  UntagResource, and a PublishVersion that creates a version. Lambda finishing a change
  (Pending -> Active, InProgress -> Successful) gives it another: the RevisionId in a
  CreateFunction or UpdateFunction* reply is never the one GetFunction returns afterwards, so it
  cannot be used for the next update. moto finishes a change at once, so that second
  RevisionId is in place as soon as the reply is sent.
- A published version has its own RevisionId; an alias has its own, new on every UpdateAlias.
- UpdateFunctionCode, UpdateFunctionConfiguration and PublishVersion with a RevisionId other
  than `$LATEST`'s, and UpdateAlias with one other than the alias's, are refused: HTTP 412,
  `x-amzn-ErrorType: PreconditionFailedException`, body `{"Type": "User", "message": ...}`.
  Without a RevisionId (or with an empty one) nothing is checked.
- PublishVersion with a CodeSha256 other than `$LATEST`'s is refused (checked after the
  RevisionId): HTTP 400 InvalidParameterValueException. When nothing changed since the last
  version it returns that version (moto did, except after an update before the first version).
- A check and the change it guards run under one lock (the server is threaded), so of two
  updates sent with the same RevisionId exactly one lands.

Where the AWS behaviour comes from: which operations take a RevisionId, and the 412, from the
Lambda service model in botocore; the rest from LocalStack's tests recorded against AWS
(tests/aws/services/lambda_/test_lambda_api.py, snapshots of 2025-11-25: TestLambdaRevisions,
TestLambdaTags::test_tag_lifecycle, TestLambdaVersions::test_publish_with_wrong_sha256), and
aws/aws-sdk#377 (an UpdateFunctionConfiguration reply's RevisionId is stale once the update
completes).

- AddPermission with a StatementId the function's (or the qualifier's) policy already has is
  refused as AWS does: HTTP 409 ResourceConflictException, "The statement id (…) provided
  already exists" (Lambda API reference, AddPermission: StatementId "unique within the
  policy"). moto 5.2.5 appended a second statement with the same id.

Left as moto has it: AddPermission/RemovePermission check moto's own policy revision (on AWS
the policy's RevisionId is the function's, and a permission change gives the function a new
one); a version's and an alias's RevisionId do not change with their permissions; replies say
LastUpdateStatus Successful where AWS says InProgress; PutFunctionConcurrency and the other
calls that take no RevisionId change none.

`dev/test_moto_patches.py` checks all of this against a running server.
"""
import functools
import json
import sys
import threading
import uuid
from importlib.metadata import version
from urllib.parse import unquote

# The moto these patches were written against (dev/requirements.txt pins it). They replace
# methods of moto's internal classes, so another version must be checked before it is trusted.
MOTO_VERSION = "5.2.5"

STALE_REVISION = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)

# One lock for every check and every change of a RevisionId (re-entrant: the wrapped server
# methods call wrapped model methods).
_LOCK = threading.RLock()


def _new_revision(obj):
    """Gives a function (or version) a new RevisionId and returns it."""
    obj.auto_lambda_revision_id = str(uuid.uuid4())
    return obj.auto_lambda_revision_id


def _errors():
    from moto.core.exceptions import JsonRESTError

    class LambdaUserError(JsonRESTError):
        """An error as Lambda sends it: the code in x-amzn-ErrorType (moto sets the header),
        the body `{"Type": "User", "message": ...}`."""

        def __init__(self, error_type, message):
            super().__init__(error_type, message)
            self.description = json.dumps({"Type": "User", "message": message})

    class PreconditionFailed(LambdaUserError):
        code = 412

        def __init__(self):
            super().__init__("PreconditionFailedException", STALE_REVISION)

    class CodeSha256Mismatch(LambdaUserError):
        code = 400

        def __init__(self, given, current):
            super().__init__(
                "InvalidParameterValueException",
                f"CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST ({current}). "
                "Please try again with the CodeSHA256 in $LATEST.",
            )

    return PreconditionFailed, CodeSha256Mismatch, LambdaUserError


def apply():
    """Patches moto's Lambda model and server classes in this process (idempotent)."""
    have = version("moto")
    if have != MOTO_VERSION:
        raise SystemExit(
            f"error: dev/moto_patches.py was written against moto {MOTO_VERSION}, this is moto {have}; "
            "check the patched methods against it, then update MOTO_VERSION"
        )
    from moto.awslambda import models, responses

    if getattr(models.LambdaFunction, "_auto_lambda_patched", False):
        return
    PreconditionFailed, CodeSha256Mismatch, LambdaUserError = _errors()

    def require_revision(given, current):
        if given and given != current:
            raise PreconditionFailed()

    def wraps(cls, name):
        """Decorator: replaces cls.name, passing the original as the first argument."""

        def decorate(f):
            original = getattr(cls, name)

            @functools.wraps(original)
            def patched(*args, **kwargs):
                return f(original, *args, **kwargs)

            setattr(cls, name, patched)
            return patched

        return decorate

    # --- The RevisionId itself: set on creation, reported with the configuration. ---

    @wraps(models.LambdaFunction, "__init__")
    def init_with_revision(original, self, *args, **kwargs):
        original(self, *args, **kwargs)
        _new_revision(self)

    @wraps(models.LambdaFunction, "get_configuration")
    def configuration_with_revision(original, self, *args, **kwargs):
        config = original(self, *args, **kwargs)
        config["RevisionId"] = self.auto_lambda_revision_id
        return config

    # --- Changes to $LATEST: checked against the RevisionId sent, then a new one. ---

    def guarded_update(original, backend, function_name, qualifier, body):
        with _LOCK:
            fn = backend.get_function(function_name, qualifier)
            require_revision(body.get("RevisionId"), fn.auto_lambda_revision_id)
            config = original(backend, function_name, qualifier, body)
            if config is not None and not body.get("DryRun"):
                reply = _new_revision(fn)
                if not body.get("Publish"):  # with Publish the reply is the new version's
                    config["RevisionId"] = reply
                _new_revision(fn)  # Lambda finished the update
            return config

    @wraps(models.LambdaBackend, "update_function_code")
    def update_function_code(original, self, function_name, qualifier, body):
        return guarded_update(original, self, function_name, qualifier, body)

    @wraps(models.LambdaBackend, "update_function_configuration")
    def update_function_configuration(original, self, function_name, qualifier, body):
        return guarded_update(original, self, function_name, qualifier, body)

    @wraps(responses.LambdaResponse, "create_function")
    def create_function(original, self):
        with _LOCK:
            reply = original(self)
            created = json.loads(reply[2])["FunctionName"]
            _new_revision(self.backend.get_function(created))  # Pending -> Active
            return reply

    def retag(original, backend, resource_arn, *args):
        with _LOCK:
            original(backend, resource_arn, *args)
            resource = backend._get_resource_by_arn(resource_arn)
            if isinstance(resource, models.LambdaFunction):
                _new_revision(resource)

    @wraps(models.LambdaBackend, "tag_resource")
    def tag_resource(original, self, resource_arn, tags):
        retag(original, self, resource_arn, tags)

    @wraps(models.LambdaBackend, "untag_resource")
    def untag_resource(original, self, resource_arn, tag_keys):
        retag(original, self, resource_arn, tag_keys)

    # --- PublishVersion: RevisionId and CodeSha256 checked; a new version, new RevisionIds. ---

    @wraps(responses.LambdaResponse, "publish_version")
    def publish_version_checked(original, self):
        params = json.loads(self.body) if self.body else {}
        with _LOCK:
            if params.get("RevisionId") or params.get("CodeSha256"):
                function_name = unquote(self.path.split("/")[-2])  # as moto's publish_version
                latest = self.backend.get_function(function_name)
                require_revision(params.get("RevisionId"), latest.auto_lambda_revision_id)
                wanted = params.get("CodeSha256")
                if wanted and wanted != latest.code_sha_256:
                    raise CodeSha256Mismatch(wanted, latest.code_sha_256)
            return original(self)

    @wraps(models.LambdaStorage, "publish_version")
    def publish_version_renewing(original, self, name_or_arn, description=""):
        with _LOCK:
            name = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn).function_name
            before = list(self._functions[name]["versions"])
            published = original(self, name_or_arn, description)
            # moto returns the last version when nothing changed since it: no new RevisionId then.
            if published is not None and not any(published is v for v in before):
                latest = self._functions[name]["latest"]
                _new_revision(published)
                _new_revision(latest)
                # moto clears its "changed since the last version" flag only when a version
                # existed before, so an update followed by the first publish left it set and
                # the next PublishVersion made an identical version 2. Lambda returns version 1.
                latest.code_or_config_updated = False
            return published

    # --- Aliases: moto gives each a RevisionId; UpdateAlias checks and renews it. ---

    @wraps(responses.LambdaResponse, "update_alias")
    def update_alias_checked(original, self):
        params = json.loads(self.body) if self.body else {}
        with _LOCK:
            if params.get("RevisionId"):
                function_name = unquote(self.path.rsplit("/")[-3])  # as moto's update_alias
                alias_name = unquote(self.path.rsplit("/", 2)[-1])
                alias = self.backend.get_alias(name=alias_name, function_name=function_name)
                require_revision(params["RevisionId"], alias.revision_id)
            return original(self)

    @wraps(models.LambdaStorage, "update_alias")
    def update_alias_renewing(original, self, *args, **kwargs):
        with _LOCK:
            alias = original(self, *args, **kwargs)
            alias.revision_id = str(uuid.uuid4())
            return alias

    # --- Permissions: a statement id is unique per policy (function or qualifier). ---

    from moto.awslambda import policy as lambda_policy

    class StatementIdTaken(LambdaUserError):
        code = 409

        def __init__(self, sid):
            super().__init__(
                "ResourceConflictException",
                f"The statement id ({sid}) provided already exists. Please provide a new statement id, "
                "or remove the existing statement.",
            )

    @wraps(lambda_policy.Policy, "add_statement")
    def add_statement_unique(original, self, raw, qualifier=None):
        with _LOCK:
            wanted = json.loads(raw).get("StatementId")
            resource_suffix = f":{qualifier}" if qualifier else ""
            for existing in self.statements:
                # moto keeps one list per function; the qualifier is the Resource's suffix.
                resource = existing.get("Resource", "")
                same_policy = resource.endswith(resource_suffix) if qualifier else resource.count(":") == 6
                if existing.get("Sid") == wanted and same_policy:
                    raise StatementIdTaken(wanted)
            return original(self, raw, qualifier)

    models.LambdaFunction._auto_lambda_patched = True
    _add_complete_lifecycle_action()


def _add_complete_lifecycle_action():
    """moto 5.2.5 has no CompleteLifecycleAction. AWS's contract (API reference,
    CompleteLifecycleAction): the group, the hook and the instance must exist (else
    ValidationError), LifecycleActionResult is CONTINUE or ABANDON; the instance then leaves
    its wait state. moto puts no instance in a wait state, so this validates and answers as AWS
    does for a pending action, which is what the worker needs to be tested against."""
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    def complete_lifecycle_action(self):
        group = self._get_param("AutoScalingGroupName")
        hook = self._get_param("LifecycleHookName")
        instance = self._get_param("InstanceId")
        result = self._get_param("LifecycleActionResult")
        backend = self.autoscaling_backend
        if result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(f"LifecycleActionResult must be CONTINUE or ABANDON, not {result}")
        if not backend.describe_lifecycle_hooks(as_name=group, lifecycle_hook_names=[hook]):
            raise ValidationError(f"No Lifecycle Hook found with name: {hook} for group: {group}")
        members = backend.describe_auto_scaling_instances(instance_ids=[instance])
        if not any(i.auto_scaling_group_name == group for i in members):
            raise ValidationError(f"No active Lifecycle Action found with instance ID {instance}")
        return EmptyResult()

    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action


def main(argv=None):
    """Applies the patches, then runs moto's server with `argv` (default: the command line)."""
    apply()
    from moto.server import main as serve

    serve(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
