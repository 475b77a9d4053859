# The upload bucket: apps/ in, status/ out, artifacts/ and cache/ for the workers.

resource "aws_s3_bucket" "uploads" {
  #checkov:skip=CKV_AWS_144:uploads are transient inputs; the deployed code lives in Lambda
  #checkov:skip=CKV_AWS_18:access logging is optional (access_log_bucket)
  bucket        = local.bucket_name
  force_destroy = var.force_destroy_bucket
}

resource "aws_s3_bucket_logging" "uploads" {
  count         = var.access_log_bucket != null ? 1 : 0
  bucket        = aws_s3_bucket.uploads.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${local.bucket_name}/"
}

resource "aws_s3_bucket_ownership_controls" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    object_ownership = "BucketOwnerEnforced" # no ACLs at all
  }
}

resource "aws_s3_bucket_public_access_block" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Versioning: the worker fetches the exact version named in the event, so an overwrite between the
# notification and the fetch cannot swap the code under a job.
resource "aws_s3_bucket_versioning" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  # Lifecycle rules act on versions; versioning must be on first.
  depends_on = [aws_s3_bucket_versioning.uploads]

  rule {
    id     = "status-reports"
    status = "Enabled"
    filter {
      prefix = var.status_prefix
    }
    expiration {
      days = var.status_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "artifacts"
    status = "Enabled"
    filter {
      prefix = var.artifact_prefix
    }
    expiration {
      days = var.artifact_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "dependency-cache"
    status = "Enabled"
    filter {
      prefix = local.cache_prefix
    }
    expiration {
      days = var.cache_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "old-versions-and-incomplete-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.uploads.arn,
      "${aws_s3_bucket.uploads.arn}/*",
    ]
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

resource "aws_s3_bucket_policy" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  policy = data.aws_iam_policy_document.bucket.json

  # A bucket policy is rejected while the public access block is being put in place.
  depends_on = [aws_s3_bucket_public_access_block.uploads]
}

resource "aws_s3_bucket_notification" "uploads" {
  bucket = aws_s3_bucket.uploads.id

  queue {
    id            = "auto-lambda-jobs"
    queue_arn     = aws_sqs_queue.jobs.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = var.source_prefix
    filter_suffix = ".zip"
  }

  # S3 sends a test event when the notification is put, and refuses the configuration if it cannot
  # deliver it: the queue and its policy (set with the queue) must exist first, as they do.

  lifecycle {
    precondition {
      condition = alltrue([
        for p in [var.status_prefix, var.artifact_prefix, local.cache_prefix] :
        !startswith(p, var.source_prefix) && !startswith(var.source_prefix, p)
      ])
      error_message = "status_prefix, artifact_prefix and cache_prefix must lie outside source_prefix, or a report or an artifact could start a job."
    }
  }
}
