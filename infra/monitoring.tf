# Logs, alarms and the dashboard.
#
# Custom metrics, namespace var.metric_namespace (default AutoLambda):
#   queue-metric-publisher: Visible, NotVisible, Delayed                {QueueName}
#                           WorkPerInstance, BacklogPerInstance          {QueueName, AutoScalingGroupName}
#   auto-lambda-worker:     Jobs (Count)                                 {QueueName, Outcome}
#                           StageDuration (Milliseconds)                 {QueueName, Stage}
#                           Shifts (Count)                               {QueueName, Event}
#                           EventPublishErrors (Count)                   {QueueName}
# infra/tests/check_metrics.py checks every custom metric named here against the Rust sources.

resource "aws_cloudwatch_log_group" "worker" {
  #checkov:skip=CKV_AWS_158:KMS is optional (log_kms_key_arn); the logs hold no secrets
  #checkov:skip=CKV_AWS_338:retention is the operator's choice (log_retention_days)
  name              = local.worker_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_cloudwatch_log_group" "publisher" {
  #checkov:skip=CKV_AWS_158:KMS is optional (log_kms_key_arn); the logs hold no secrets
  #checkov:skip=CKV_AWS_338:retention is the operator's choice (log_retention_days)
  name              = local.publisher_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

locals {
  ns       = var.metric_namespace
  queue    = aws_sqs_queue.jobs.name
  dlq      = aws_sqs_queue.dlq.name
  outcomes = ["deployed", "unchanged", "stale-skipped", "failed", "retrying", "rolled-back", "shifting"]
  stages   = ["download", "unpack", "build", "package", "deploy"]
  # A gradual traffic shift: started once, stepped per delayed step message, then it ends
  # promoted (all traffic on the new version), rolled back (an alarm fired) or superseded (a
  # newer upload of the app took over the alias).
  shift_events = ["started", "stepped", "promoted", "rolled-back", "superseded"]

  health_alarm_arns = concat(
    [for a in aws_cloudwatch_metric_alarm.health : a.arn],
    [for a in aws_cloudwatch_metric_alarm.canary : a.arn],
  )

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title  = "Queue depth (published every ${var.publisher_period_seconds} s)"
        region = var.region
        view   = "timeSeries"
        stat   = "Maximum"
        period = 10
        metrics = [
          [local.ns, "Visible", "QueueName", local.queue, { label = "visible" }],
          [local.ns, "NotVisible", "QueueName", local.queue, { label = "in flight" }],
          [local.ns, "Delayed", "QueueName", local.queue, { label = "delayed" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title  = "Work per instance (tracked, target ${var.work_per_instance_target}) and backlog per instance"
        region = var.region
        view   = "timeSeries"
        stat   = "Average"
        period = 10
        metrics = [
          [local.ns, "WorkPerInstance", "QueueName", local.queue, "AutoScalingGroupName", local.worker_asg, { label = "work per instance (waiting + in hand; tracked)" }],
          [local.ns, "BacklogPerInstance", "QueueName", local.queue, "AutoScalingGroupName", local.worker_asg, { label = "backlog per instance (waiting)" }],
        ]
        annotations = {
          horizontal = [{ label = "target", value = var.work_per_instance_target }]
        }
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "Workers"
        region = var.region
        view   = "timeSeries"
        stat   = "Maximum"
        period = 60
        metrics = [
          ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", local.worker_asg, { label = "in service" }],
          ["AWS/AutoScaling", "GroupDesiredCapacity", "AutoScalingGroupName", local.worker_asg, { label = "desired" }],
          ["AWS/AutoScaling", "GroupPendingInstances", "AutoScalingGroupName", local.worker_asg, { label = "pending" }],
          ["AWS/AutoScaling", "WarmPoolWarmedCapacity", "AutoScalingGroupName", local.worker_asg, { label = "warm pool (ready)" }],
        ]
        yAxis = { left = { min = 0, max = var.worker_max_size } }
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title   = "Deploy outcomes (per 5 minutes)"
        region  = var.region
        view    = "timeSeries"
        stacked = true
        stat    = "Sum"
        period  = 300
        metrics = [
          for o in local.outcomes : [local.ns, "Jobs", "QueueName", local.queue, "Outcome", o, { label = o }]
        ]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title  = "Build duration (ms)"
        region = var.region
        view   = "timeSeries"
        period = 300
        metrics = [
          [local.ns, "StageDuration", "QueueName", local.queue, "Stage", "build", { stat = "p50", label = "build p50" }],
          [local.ns, "StageDuration", "QueueName", local.queue, "Stage", "build", { stat = "p90", label = "build p90" }],
          [local.ns, "StageDuration", "QueueName", local.queue, "Stage", "build", { stat = "Maximum", label = "build max" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title   = "Time per stage, p50 (ms)"
        region  = var.region
        view    = "timeSeries"
        stacked = true
        stat    = "p50"
        period  = 300
        metrics = [
          for s in local.stages : [local.ns, "StageDuration", "QueueName", local.queue, "Stage", s, { label = s }]
        ]
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title  = "Dead-letter queue and oldest message"
        region = var.region
        view   = "timeSeries"
        stat   = "Maximum"
        period = 60
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dlq, { label = "DLQ messages" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", local.queue, { label = "oldest job (s)", yAxis = "right" }],
        ]
      }
    },
    {
      type = "alarm", x = 12, y = 18, width = 12, height = 6
      properties = {
        title  = "Alarms"
        alarms = local.health_alarm_arns
      }
    },
    {
      type = "metric", x = 0, y = 24, width = 12, height = 6
      properties = {
        title   = "Traffic shifts by event (per 5 minutes)"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        stat    = "Sum"
        period  = 300
        metrics = concat(
          [for e in local.shift_events : [local.ns, "Shifts", "QueueName", local.queue, "Event", e, { label = e }]],
          # Uploads whose deploy started a gradual shift (the job's outcome; the steps follow).
          [[local.ns, "Jobs", "QueueName", local.queue, "Outcome", "shifting", { label = "uploads that started a shift", yAxis = "right" }]],
        )
      }
    },
    {
      type = "metric", x = 12, y = 24, width = 12, height = 6
      properties = {
        title  = "Rollbacks and event publish errors (per 5 minutes)"
        region = var.region
        view   = "timeSeries"
        stat   = "Sum"
        period = 300
        metrics = [
          [local.ns, "Jobs", "QueueName", local.queue, "Outcome", "rolled-back", { label = "deploys rolled back" }],
          [local.ns, "Shifts", "QueueName", local.queue, "Event", "rolled-back", { label = "shifts rolled back" }],
          [local.ns, "EventPublishErrors", "QueueName", local.queue, { label = "deployment events not published", yAxis = "right" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "main" {
  count          = var.enable_dashboard ? 1 : 0
  dashboard_name = local.dashboard_name
  dashboard_body = jsonencode({
    start          = "-PT3H"
    periodOverride = "inherit"
    widgets        = local.dashboard_widgets
  })
}

locals {
  alarms = merge(
    {
      dlq-not-empty = {
        description = "Messages in the dead-letter queue: uploads that failed ${var.max_receive_count} times. Read their status reports, fix, re-upload; then purge or redrive the DLQ."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = local.dlq }
        stat        = "Maximum"
        period      = 60
        evaluations = 1
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        missing     = "notBreaching"
      }
      oldest-job-too-old = {
        description = "A job has waited more than ${var.oldest_message_alarm_seconds} s: the fleet is not keeping up, or cannot start."
        namespace   = "AWS/SQS"
        metric      = "ApproximateAgeOfOldestMessage"
        dimensions  = { QueueName = local.queue }
        stat        = "Maximum"
        period      = 60
        evaluations = 3
        comparison  = "GreaterThanThreshold"
        threshold   = var.oldest_message_alarm_seconds
        missing     = "notBreaching"
      }
      deploys-rolled-back = {
        description = "A gradual traffic shift was rolled back in the last 5 minutes: an alarm named in the app's lambda.toml fired, and the alias went back to the previous version. The status report under ${var.status_prefix} and the deployment event name the alarm."
        namespace   = local.ns
        metric      = "Jobs"
        dimensions  = { QueueName = local.queue, Outcome = "rolled-back" }
        stat        = "Sum"
        period      = 300
        evaluations = 1
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        missing     = "notBreaching"
      }
      deploys-failing = {
        description = "Uploads ended in outcome failed in the last 5 minutes. Their status reports under ${var.status_prefix} say why."
        namespace   = local.ns
        metric      = "Jobs"
        dimensions  = { QueueName = local.queue, Outcome = "failed" }
        stat        = "Sum"
        period      = 300
        evaluations = 1
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        missing     = "notBreaching"
      }
    },
    var.publisher_enabled ? {
      publisher-silent = {
        description = "queue-metric-publisher has published no sample for 3 minutes: the worker group cannot scale."
        namespace   = local.ns
        metric      = "Visible"
        dimensions  = { QueueName = local.queue }
        stat        = "SampleCount"
        period      = 60
        evaluations = 3
        comparison  = "LessThanThreshold"
        threshold   = 1
        missing     = "breaching"
      }
    } : {}
  )
}

resource "aws_cloudwatch_metric_alarm" "health" {
  for_each = var.enable_alarms ? local.alarms : {}

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.stat
  period              = each.value.period
  evaluation_periods  = each.value.evaluations
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
}

# An example canary alarm for gradual traffic shifting: errors of one function's alias, per
# minute. An app names it in its lambda.toml ([deploy] alarms = ["<alarm name>"]); while a
# shift is under way the worker reads it before every step and rolls the alias back when it is
# in ALARM. Through the alias, Errors counts both versions the weights split traffic between.
# It has no actions: the worker reads it, and a rollback raises deploys-rolled-back.
resource "aws_cloudwatch_metric_alarm" "canary" {
  count = var.canary_alarm_function != null ? 1 : 0

  alarm_name          = "${var.canary_alarm_function}-${var.canary_alarm_alias}-errors"
  alarm_description   = "Errors of ${var.canary_alarm_function}:${var.canary_alarm_alias} (more than ${var.canary_alarm_threshold} in a minute). Named in lambda.toml [deploy] alarms, it rolls back a gradual traffic shift."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.canary_alarm_function, Resource = "${var.canary_alarm_function}:${var.canary_alarm_alias}" }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.canary_alarm_threshold
  # No invocations, no errors: a quiet canary is not a failing one.
  treat_missing_data = "notBreaching"

  lifecycle {
    precondition {
      condition     = startswith(var.canary_alarm_function, local.function_prefix)
      error_message = "canary_alarm_function must be a full function name starting with the function prefix (${local.function_prefix}): the worker deploys no other function."
    }
  }
}
