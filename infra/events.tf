# Deployment events: every state change of a deployment (deployed, failed, a traffic shift started,
# stepped, promoted, rolled back or superseded) as an EventBridge event and an SNS message.
#
#   EventBridge: source "auto-lambda", detail-type "auto-lambda Deployment State Change", on the
#                bus events_bus_name (default: a dedicated bus "<name>-deployments" made here).
#   SNS:         the topic "<name>-deployments" (events_topic_enabled), for e-mail, chat, queues.
#
# The worker gets events:PutEvents on that one bus (only with source auto-lambda) and sns:Publish
# on that one topic (iam.tf); it is told both through its environment file (compute.tf). A
# failed publish never fails a deployment: the worker counts it (EventPublishErrors).

locals {
  events_source      = "auto-lambda"
  events_detail_type = "auto-lambda Deployment State Change"

  # Null: the stack's own bus. A name or an ARN: an existing bus, not managed here.
  events_bus_create = var.events_bus_enabled && var.events_bus_name == null
  events_bus_given  = var.events_bus_name == null ? "${var.name}-deployments" : var.events_bus_name
  events_bus_arn = !var.events_bus_enabled ? null : (
    startswith(local.events_bus_given, "arn:") ? local.events_bus_given :
    "arn:${local.partition}:events:${var.region}:${local.account_id}:event-bus/${local.events_bus_given}"
  )
  # What the worker is given (AUTO_LAMBDA_EVENTS_BUS): the bus's name in this account, its ARN
  # for a bus elsewhere (PutEvents takes either).
  events_bus = !var.events_bus_enabled ? null : (
    local.events_bus_create ? aws_cloudwatch_event_bus.deployments[0].name : local.events_bus_given
  )

  events_topic_arn = var.events_topic_enabled ? aws_sns_topic.deployments[0].arn : null
  # The AWS managed key (alias/aws/sns) needs no grant: its key policy admits the account's
  # principals through SNS. A customer managed key does (iam.tf).
  events_topic_cmk = var.events_topic_enabled && !startswith(var.events_topic_kms_key_id, "alias/aws/")
}

resource "aws_cloudwatch_event_bus" "deployments" {
  count = local.events_bus_create ? 1 : 0
  name  = "${var.name}-deployments"
}

resource "aws_sns_topic" "deployments" {
  count             = var.events_topic_enabled ? 1 : 0
  name              = "${var.name}-deployments"
  display_name      = "auto-lambda deployments (${var.name})"
  kms_master_key_id = var.events_topic_kms_key_id
}
