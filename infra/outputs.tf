output "region" {
  description = "Region of the stack."
  value       = var.region
}

output "bucket_name" {
  description = "Upload bucket: put app zips under upload_prefix."
  value       = aws_s3_bucket.uploads.bucket
}

output "bucket_arn" {
  description = "ARN of the upload bucket."
  value       = aws_s3_bucket.uploads.arn
}

output "upload_prefix" {
  description = "Key prefix that starts a job (keys ending in .zip)."
  value       = var.source_prefix
}

output "status_prefix" {
  description = "Key prefix of the JSON status reports."
  value       = var.status_prefix
}

output "upload_example" {
  description = "How to deploy an app directory zipped as app.zip."
  value       = "aws s3 cp app.zip s3://${aws_s3_bucket.uploads.bucket}/${var.source_prefix}<function-name>.zip"
}

output "queue_url" {
  description = "URL of the job queue (AUTO_LAMBDA_QUEUE_URL, QMP_QUEUE_URL)."
  value       = aws_sqs_queue.jobs.url
}

output "queue_arn" {
  description = "ARN of the job queue."
  value       = aws_sqs_queue.jobs.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "function_prefix" {
  description = "Prefix of every function name the worker deploys (AUTO_LAMBDA_FUNCTION_PREFIX)."
  value       = local.function_prefix
}

output "lambda_execution_role_arn" {
  description = "Execution role of the deployed functions (AUTO_LAMBDA_ROLE_ARN)."
  value       = aws_iam_role.lambda_exec.arn
}

output "worker_role_arn" {
  description = "Role of the worker instances."
  value       = aws_iam_role.worker.arn
}

output "publisher_role_arn" {
  description = "Role of the publisher instance."
  value       = aws_iam_role.publisher.arn
}

output "worker_asg_name" {
  description = "Auto Scaling group of the workers."
  value       = aws_autoscaling_group.workers.name
}

output "publisher_asg_name" {
  description = "Auto Scaling group of the publisher (null when publisher_enabled is false)."
  value       = var.publisher_enabled ? aws_autoscaling_group.publisher[0].name : null
}

output "worker_launch_template_id" {
  description = "Launch template of the workers."
  value       = aws_launch_template.worker.id
}

output "publisher_launch_template_id" {
  description = "Launch template of the publisher (null when publisher_enabled is false)."
  value       = var.publisher_enabled ? aws_launch_template.publisher[0].id : null
}

output "ami_id" {
  description = "AMI the instances run."
  value       = local.ami_id
}

output "metric_namespace" {
  description = "CloudWatch namespace of the custom metrics."
  value       = var.metric_namespace
}

output "log_groups" {
  description = "CloudWatch Logs groups of the worker and the publisher."
  value = {
    worker    = aws_cloudwatch_log_group.worker.name
    publisher = aws_cloudwatch_log_group.publisher.name
  }
}

output "alarm_names" {
  description = "Names of the health alarms."
  value       = [for a in aws_cloudwatch_metric_alarm.health : a.alarm_name]
}

output "canary_alarm_name" {
  description = "Name of the example canary alarm, for lambda.toml [deploy] alarms (null when canary_alarm_function is null)."
  value       = var.canary_alarm_function != null ? aws_cloudwatch_metric_alarm.canary[0].alarm_name : null
}

output "events_bus_name" {
  description = "EventBridge bus of the deployment events (AUTO_LAMBDA_EVENTS_BUS; null when events_bus_enabled is false). Match source \"auto-lambda\", detail-type \"auto-lambda Deployment State Change\"."
  value       = local.events_bus
}

output "events_bus_arn" {
  description = "ARN of the deployment events bus (null when events_bus_enabled is false)."
  value       = local.events_bus_arn
}

output "events_topic_arn" {
  description = "SNS topic of the deployment events (AUTO_LAMBDA_EVENTS_TOPIC; null when events_topic_enabled is false). Subscribe to it."
  value       = local.events_topic_arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null when enable_dashboard is false)."
  value       = var.enable_dashboard ? aws_cloudwatch_dashboard.main[0].dashboard_name : null
}

output "dashboard_url" {
  description = "Console URL of the dashboard."
  value       = var.enable_dashboard ? "https://${var.region}.console.aws.amazon.com/cloudwatch/home?region=${var.region}#dashboards/dashboard/${local.dashboard_name}" : null
}

output "dashboard_body" {
  description = "The dashboard's JSON body (also when the dashboard itself is not created), for checks."
  value = jsonencode({
    start          = "-PT3H"
    periodOverride = "inherit"
    widgets        = local.dashboard_widgets
  })
}

output "worker_environment" {
  description = "The worker's environment file, as cloud-init writes it to /etc/auto-lambda/worker.env."
  value       = local.worker_env
}

output "publisher_environment" {
  description = "The publisher's environment file, as cloud-init writes it to /etc/auto-lambda/publisher.env."
  value       = local.publisher_env
}
