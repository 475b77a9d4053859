# IAM: the functions' execution role, and one least-privilege role per binary.
# The worker holds the right to deploy code, so every statement names its resources.

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- The execution role given to every deployed function -------------------------------------

resource "aws_iam_role" "lambda_exec" {
  name                 = "${var.name}-lambda-exec"
  description          = "Execution role of functions deployed by auto-lambda (${var.name})."
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "lambda_exec" {
  statement {
    sid     = "OwnLogGroups"
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/lambda/${local.function_prefix}*",
      "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/lambda/${local.function_prefix}*:log-stream:*",
    ]
  }
}

resource "aws_iam_role_policy" "lambda_exec" {
  name   = "logs"
  role   = aws_iam_role.lambda_exec.id
  policy = data.aws_iam_policy_document.lambda_exec.json
}

resource "aws_iam_role_policy_attachment" "lambda_exec_extra" {
  for_each   = toset(var.lambda_execution_policy_arns)
  role       = aws_iam_role.lambda_exec.name
  policy_arn = each.value
}

# --- Statements both instance roles share -------------------------------------------------------

data "aws_iam_policy_document" "instance_common" {
  statement {
    sid       = "PublishOwnNamespaceOnly"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource; the namespace condition is the scope
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metric_namespace]
    }
  }
}

# --- The worker ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "worker" {
  source_policy_documents = [data.aws_iam_policy_document.instance_common.json]

  statement {
    sid       = "ShipOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }

  statement {
    sid = "DeployPrefixedFunctionsOnly"
    actions = [
      "lambda:GetFunction",
      "lambda:GetFunctionConfiguration",
      "lambda:CreateFunction",
      "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration",
      "lambda:PublishVersion",
      "lambda:ListVersionsByFunction",
      "lambda:GetAlias",
      "lambda:CreateAlias",
      "lambda:UpdateAlias",
      "lambda:TagResource",
      "lambda:UntagResource", # drops the auto-lambda:url tag when [url] goes
      "lambda:ListTags",
    ]
    # Unqualified and qualified (version, alias) ARNs of function:<prefix>* only.
    resources = [local.function_arn_pattern, "${local.function_arn_pattern}:*"]
  }

  statement {
    # lambda.toml [url]: the function URL lives on the alias (a qualified ARN); GetPolicy reads
    # the resource-based policy to find the public-access statement the worker manages.
    sid = "ManageFunctionUrlsOfPrefixedFunctions"
    actions = [
      "lambda:GetFunctionUrlConfig",
      "lambda:CreateFunctionUrlConfig",
      "lambda:UpdateFunctionUrlConfig",
      "lambda:DeleteFunctionUrlConfig",
      "lambda:GetPolicy",
      "lambda:RemovePermission", # only ever narrows access; lambda:Principal is not in its request
    ]
    resources = [local.function_arn_pattern, "${local.function_arn_pattern}:*"]
  }

  statement {
    # A URL with auth NONE needs a public statement in the function's policy. The worker adds
    # nothing else: lambda:Principal "*" only, so it cannot grant another account or a service.
    sid       = "AddPublicUrlPermissionOnly"
    actions   = ["lambda:AddPermission"]
    resources = [local.function_arn_pattern, "${local.function_arn_pattern}:*"]
    condition {
      test     = "StringEquals"
      variable = "lambda:Principal"
      values   = ["*"]
    }
  }

  statement {
    # Gradual traffic shifting checks the alarms an app names in lambda.toml ([deploy] alarms).
    # DescribeAlarms supports resource-level permissions on the alarm resource type
    # (arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>; Service Authorization
    # Reference, "Actions, resources, and condition keys for Amazon CloudWatch"). The
    # DescribeAlarms API reference adds that composite alarms are returned only to a permission
    # scoped to "*" (a scoped one is refused: cdklabs/cdk-enterprise-iac#202), so composite
    # alarms need deploy_alarms_composite, which grants "*" (read-only, this action only).
    sid     = "ReadDeployAlarms"
    actions = ["cloudwatch:DescribeAlarms"]
    resources = var.deploy_alarms_composite ? ["*"] : [
      for p in var.deploy_alarm_name_patterns : "arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${p}"
    ]
  }

  statement {
    sid       = "PassOnlyTheExecutionRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.lambda_exec.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com"]
    }
  }

  statement {
    sid       = "ReadUploads"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.uploads.arn}/${var.source_prefix}*"]
  }

  statement {
    sid     = "WriteReportsArtifactsCache"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.uploads.arn}/${var.status_prefix}*",
      "${aws_s3_bucket.uploads.arn}/${var.artifact_prefix}*",
      "${aws_s3_bucket.uploads.arn}/${local.cache_prefix}*",
    ]
  }

  statement {
    # Lambda reads a large package from S3 with the caller's rights; the cache is read back.
    sid     = "ReadArtifactsCache"
    actions = ["s3:GetObject"]
    resources = [
      "${aws_s3_bucket.uploads.arn}/${var.artifact_prefix}*",
      "${aws_s3_bucket.uploads.arn}/${local.cache_prefix}*",
    ]
  }

  statement {
    # Each step of a gradual traffic shift reads the upload's status report and writes it back
    # with the shift's progress. Reports only (*.json): the build logs beside them are not read.
    sid       = "ReadReportsForShiftSteps"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.uploads.arn}/${var.status_prefix}*.json"]
  }

  statement {
    # Without ListBucket a missing cache entry reads as 403 instead of 404.
    sid       = "ListCacheOnly"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.uploads.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.cache_prefix}*"]
    }
  }

  statement {
    # SendMessage: the next step of a gradual traffic shift is a delayed message to this same
    # queue (never the DLQ). The worker could already deploy; sending adds no new power.
    sid = "ConsumeOwnQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:SendMessage",
    ]
    resources = [aws_sqs_queue.jobs.arn]
  }

  dynamic "statement" {
    for_each = var.events_bus_enabled ? [1] : []
    content {
      # One bus, and only events that say they come from auto-lambda.
      sid       = "PutDeploymentEventsOnOneBus"
      actions   = ["events:PutEvents"]
      resources = [local.events_bus_arn]
      condition {
        test     = "StringEquals"
        variable = "events:source"
        values   = [local.events_source]
      }
    }
  }

  dynamic "statement" {
    for_each = var.events_topic_enabled ? [1] : []
    content {
      sid       = "PublishDeploymentEventsToOneTopic"
      actions   = ["sns:Publish"]
      resources = [local.events_topic_arn]
    }
  }

  dynamic "statement" {
    for_each = local.events_topic_cmk ? [1] : []
    content {
      sid       = "EventsTopicKey"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.events_topic_kms_key_id]
    }
  }

  statement {
    # Protect itself while busy; report itself ready (the launch lifecycle hook).
    sid       = "ProtectSelfInOwnGroup"
    actions   = ["autoscaling:SetInstanceProtection", "autoscaling:CompleteLifecycleAction"]
    resources = [local.worker_asg_arn]
  }

  statement {
    # Read-only and without resource-level scoping in IAM: finds the worker's own group.
    sid       = "FindOwnGroup"
    actions   = ["autoscaling:DescribeAutoScalingInstances"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(var.allowed_layer_arns) > 0 ? [1] : []
    content {
      sid       = "UseAllowedLayers"
      actions   = ["lambda:GetLayerVersion"]
      resources = var.allowed_layer_arns
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn != null ? [1] : []
    content {
      sid       = "BucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role" "worker" {
  name               = "${var.name}-worker"
  description        = "auto-lambda worker instances (${var.name})."
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "worker" {
  name   = "auto-lambda-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_role_policy_attachment" "worker_ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.worker.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "worker" {
  name = "${var.name}-worker"
  role = aws_iam_role.worker.name
}

# --- The publisher ------------------------------------------------------------------------------

data "aws_iam_policy_document" "publisher" {
  source_policy_documents = [data.aws_iam_policy_document.instance_common.json]

  statement {
    sid       = "ShipOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.publisher.arn}:*"]
  }

  statement {
    sid       = "ReadQueueDepth"
    actions   = ["sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.jobs.arn]
  }

  statement {
    # No resource-level scoping exists for Describe calls.
    sid       = "CountInServiceWorkers"
    actions   = ["autoscaling:DescribeAutoScalingGroups"]
    resources = ["*"]
  }
}

resource "aws_iam_role" "publisher" {
  name               = "${var.name}-publisher"
  description        = "auto-lambda queue-metric-publisher instance (${var.name})."
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "publisher" {
  name   = "queue-metric-publisher"
  role   = aws_iam_role.publisher.id
  policy = data.aws_iam_policy_document.publisher.json
}

resource "aws_iam_role_policy_attachment" "publisher_ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.publisher.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "publisher" {
  name = "${var.name}-publisher"
  role = aws_iam_role.publisher.name
}
