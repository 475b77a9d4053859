data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_ami" "worker" {
  count       = var.ami_id == null ? 1 : 0
  owners      = ["self"]
  most_recent = true

  filter {
    name   = "name"
    values = ["${var.ami_name_prefix}*"]
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  tags = merge({
    Project   = "auto-lambda"
    Stack     = var.name
    ManagedBy = "terraform"
  }, var.tags)

  bucket_name     = coalesce(var.bucket_name, "${var.name}-${local.account_id}-${var.region}")
  function_prefix = coalesce(var.function_prefix, "${var.name}-")
  ami_id          = var.ami_id != null ? var.ami_id : data.aws_ami.worker[0].id

  # The worker's shared dependency cache lives here (a fixed prefix, like the worker's default).
  cache_prefix = "cache/"

  queue_name = "${var.name}-jobs"
  dlq_name   = "${var.name}-jobs-dlq"
  queue_arn  = "arn:${local.partition}:sqs:${var.region}:${local.account_id}:${local.queue_name}"
  worker_asg = "${var.name}-workers"
  # The launch lifecycle hook each worker completes once it is ready (compute.tf).
  worker_ready_hook = "${var.name}-worker-ready"
  publisher_asg     = "${var.name}-publisher"
  dashboard_name    = var.name

  # The queue's own visibility timeout is the fallback for a receive that does not set one; the
  # worker asks for worker_visibility_timeout_seconds and renews it while the job runs.
  queue_visibility_timeout = var.build_timeout_seconds + 300

  # systemd must not kill the worker before its drain grace is over.
  worker_stop_timeout = var.shutdown_grace_seconds + 30

  worker_log_group    = "/${var.name}/worker"
  publisher_log_group = "/${var.name}/publisher"

  function_arn_pattern = "arn:${local.partition}:lambda:${var.region}:${local.account_id}:function:${local.function_prefix}*"
  worker_asg_arn       = "arn:${local.partition}:autoscaling:${var.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/${local.worker_asg}"
}
