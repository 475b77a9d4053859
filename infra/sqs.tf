# The job queue, its dead-letter queue, and a queue policy that lets only the upload bucket send.

resource "aws_sqs_queue" "dlq" {
  name                      = local.dlq_name
  message_retention_seconds = var.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "jobs" {
  name                       = local.queue_name
  visibility_timeout_seconds = local.queue_visibility_timeout
  receive_wait_time_seconds  = 20 # long polling
  message_retention_seconds  = var.message_retention_seconds
  sqs_managed_sse_enabled    = true

  # Given here rather than as an aws_sqs_queue_policy: one resource, one wait for SQS to apply
  # the attributes. The statement names the queue's ARN, which is built from its name (local).
  policy = data.aws_iam_policy_document.jobs_queue.json

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  lifecycle {
    precondition {
      condition     = local.queue_visibility_timeout <= 43200
      error_message = "build_timeout_seconds + 300 must not exceed SQS's 12-hour visibility limit."
    }
  }
}

# Only the job queue may use the DLQ. (moto does not keep this attribute, so the emulator test
# turns it off with enable_redrive_allow_policy = false.)
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  count     = var.enable_redrive_allow_policy ? 1 : 0
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.jobs.arn]
  })
}

data "aws_iam_policy_document" "jobs_queue" {
  statement {
    sid       = "AllowUploadBucketOnly"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.queue_arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.uploads.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.queue_arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
