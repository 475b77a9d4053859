# The worker fleet (scales from zero on WorkPerInstance, with a warm pool of stopped instances)
# and the publisher (a group of one).

resource "aws_security_group" "instances" {
  name        = "${var.name}-instances"
  description = "auto-lambda workers and publisher: no inbound, HTTPS out"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-instances"
  }
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each          = toset(var.egress_cidr_blocks)
  security_group_id = aws_security_group.instances.id
  description       = "AWS APIs, build image registry, package indexes"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

locals {
  # What cloud-init writes on a worker: the environment file, the stop timeout that covers the
  # drain grace, and the CloudWatch agent's configuration; then it starts the services.
  worker_env = templatefile("${path.module}/templates/worker.env.tftpl", {
    name                = var.name
    region              = var.region
    queue_url           = aws_sqs_queue.jobs.url
    role_arn            = aws_iam_role.lambda_exec.arn
    source_prefix       = var.source_prefix
    status_prefix       = var.status_prefix
    function_prefix     = local.function_prefix
    concurrency         = var.worker_concurrency
    visibility_timeout  = var.worker_visibility_timeout_seconds
    shutdown_grace      = var.shutdown_grace_seconds
    stop_timeout        = local.worker_stop_timeout
    log_format          = var.log_format
    build_mode          = var.build_mode
    build_timeout       = var.build_timeout_seconds
    build_images        = join(",", [for runtime, image in var.build_images : "${runtime}=${image}"])
    build_ca_bundle     = var.build_ca_bundle
    cache_max_bytes     = floor(var.worker_cache_max_gb * 1073741824)
    cache_prefix        = local.cache_prefix
    bucket              = aws_s3_bucket.uploads.bucket
    artifact_prefix     = var.artifact_prefix
    scale_in_protection = var.scale_in_protection
    # With a warm pool the worker must read its lifecycle state: "on", not "auto".
    follow_lifecycle_state = var.warm_pool ? "on" : "auto"
    ready_hook             = local.worker_ready_hook
    events_source          = local.events_source
    events_detail_type     = local.events_detail_type
    events_bus             = local.events_bus
    events_topic           = local.events_topic_arn
    extra                  = var.worker_extra_environment
  })

  publisher_env = templatefile("${path.module}/templates/publisher.env.tftpl", {
    name       = var.name
    region     = var.region
    queue_url  = aws_sqs_queue.jobs.url
    namespace  = var.metric_namespace
    period     = var.publisher_period_seconds
    log_format = var.log_format
    worker_asg = local.worker_asg
  })

  agent_bin = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"

  # journald -> rsyslog (ami/files/rsyslog-auto-lambda.conf) -> this file -> CloudWatch Logs.
  agent_config = {
    for role, group in {
      worker    = aws_cloudwatch_log_group.worker.name
      publisher = aws_cloudwatch_log_group.publisher.name
    } :
    role => jsonencode({
      agent = { run_as_user = "cwagent" }
      logs = {
        logs_collected = {
          files = {
            collect_list = [{
              file_path       = "/var/log/auto-lambda/${role}.log"
              log_group_name  = group
              log_stream_name = "{instance_id}"
              timezone        = "UTC"
            }]
          }
        }
      }
    })
  }

  worker_user_data = join("\n", ["#cloud-config", yamlencode({
    write_files = [
      {
        path        = "/etc/auto-lambda/worker.env"
        owner       = "root:root"
        permissions = "0600"
        content     = local.worker_env
      },
      {
        path        = "/etc/systemd/system/auto-lambda-worker.service.d/50-stack.conf"
        owner       = "root:root"
        permissions = "0644"
        content     = "# Written by Terraform: the drain grace (${var.shutdown_grace_seconds} s) plus 30 s.\n[Service]\nTimeoutStopSec=${local.worker_stop_timeout}\n"
      },
      {
        path        = "/etc/auto-lambda/cloudwatch-agent.json"
        owner       = "root:root"
        permissions = "0644"
        content     = local.agent_config["worker"]
      },
    ]
    runcmd = [
      ["systemctl", "daemon-reload"],
      [local.agent_bin, "-a", "fetch-config", "-m", "ec2", "-s", "-c", "file:/etc/auto-lambda/cloudwatch-agent.json"],
      ["systemctl", "enable", "--now", "auto-lambda-worker.service"],
    ]
  })])

  publisher_user_data = join("\n", ["#cloud-config", yamlencode({
    write_files = [
      {
        path        = "/etc/auto-lambda/publisher.env"
        owner       = "root:root"
        permissions = "0600"
        content     = local.publisher_env
      },
      {
        path        = "/etc/auto-lambda/cloudwatch-agent.json"
        owner       = "root:root"
        permissions = "0644"
        content     = local.agent_config["publisher"]
      },
    ]
    runcmd = [
      [local.agent_bin, "-a", "fetch-config", "-m", "ec2", "-s", "-c", "file:/etc/auto-lambda/cloudwatch-agent.json"],
      # A publisher instance runs no builds: no Docker, no pre-pulled images needed.
      ["systemctl", "disable", "--now", "docker.service", "docker.socket", "auto-lambda-prune.timer"],
      ["systemctl", "enable", "--now", "queue-metric-publisher.service"],
    ]
  })])

  # IMDSv2 only, and a hop limit of 1: a packet from a build container crosses the docker bridge
  # (one more hop), so containers never reach the metadata service or the instance's credentials.
  metadata_options = {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }
}

# --- Workers ----------------------------------------------------------------------------------

resource "aws_launch_template" "worker" {
  name                   = "${var.name}-worker"
  description            = "auto-lambda worker (${var.name})"
  image_id               = local.ami_id
  instance_type          = var.worker_instance_type
  update_default_version = true
  user_data              = base64encode(local.worker_user_data)

  iam_instance_profile {
    arn = aws_iam_instance_profile.worker.arn
  }

  network_interfaces {
    associate_public_ip_address = var.associate_public_ip_address
    security_groups             = [aws_security_group.instances.id]
    delete_on_termination       = true
  }

  metadata_options {
    http_endpoint               = local.metadata_options.http_endpoint
    http_tokens                 = local.metadata_options.http_tokens
    http_put_response_hop_limit = local.metadata_options.http_put_response_hop_limit
    instance_metadata_tags      = local.metadata_options.instance_metadata_tags
  }

  block_device_mappings {
    device_name = "/dev/xvda" # the root volume of Amazon Linux 2023
    ebs {
      volume_size           = var.worker_root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-worker", Role = "worker" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${var.name}-worker", Role = "worker" })
  }
}

resource "aws_autoscaling_group" "workers" {
  name                      = local.worker_asg
  min_size                  = var.worker_min_size
  max_size                  = var.worker_max_size
  desired_capacity          = coalesce(var.worker_desired_capacity, var.worker_min_size)
  vpc_zone_identifier       = var.subnet_ids
  health_check_type         = "EC2"
  health_check_grace_period = var.instance_warmup_seconds
  default_instance_warmup   = var.instance_warmup_seconds
  termination_policies      = ["OldestLaunchTemplate", "OldestInstance"]
  # Instances protect themselves while busy (AUTO_LAMBDA_SCALE_IN_PROTECTION); new ones start free.
  protect_from_scale_in = false

  launch_template {
    id      = aws_launch_template.worker.id
    version = aws_launch_template.worker.latest_version
  }

  # The worker completes this hook once it has initialised (AUTO_LAMBDA_LAUNCH_LIFECYCLE_HOOK),
  # on every boot: an instance enters the warm pool, and one leaving it goes into service, only
  # with a ready worker. AWS does not wait for user data before stopping an instance into the
  # pool; this does. One whose worker never gets ready is abandoned (terminated and replaced).
  initial_lifecycle_hook {
    name                 = local.worker_ready_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
    default_result       = "ABANDON"
    heartbeat_timeout    = var.worker_ready_timeout_seconds
  }

  # Pre-initialised workers, stopped: a scale-out starts one (about 20-40 s) instead of booting a
  # new instance (about 90 s). A stopped instance costs only its EBS volume. The worker follows
  # its target lifecycle state (AUTO_LAMBDA_FOLLOW_LIFECYCLE_STATE): while warming it initialises
  # and takes no work; from the pool, systemd starts it on boot and it works once InService.
  # Scale-in sends idle workers back to the pool instead of terminating them.
  dynamic "warm_pool" {
    for_each = var.warm_pool ? [1] : []
    content {
      pool_state                  = "Stopped"
      min_size                    = var.warm_pool_min_size
      max_group_prepared_capacity = var.warm_pool_max_group_prepared_capacity
      instance_reuse_policy {
        reuse_on_scale_in = true
      }
    }
  }

  # GroupInServiceInstances and GroupDesiredCapacity feed the dashboard and the wake-up alarm.
  enabled_metrics = [
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupPendingInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
    "WarmPoolWarmedCapacity",
    "WarmPoolPendingCapacity",
    "WarmPoolTotalCapacity",
  ]
  metrics_granularity = "1Minute"

  # A new launch template version (AMI, user data, instance type) rolls through the group.
  # Busy workers are protected from scale-in; the refresh waits for them to finish.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage       = 50
      instance_warmup              = var.instance_warmup_seconds
      scale_in_protected_instances = "Wait"
      skip_matching                = true
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-worker"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # The scaling policies own the desired capacity once the group exists.
    ignore_changes = [desired_capacity]

    precondition {
      condition     = var.worker_min_size >= 0 && var.worker_min_size <= var.worker_max_size
      error_message = "worker_min_size must be between 0 and worker_max_size."
    }
  }
}

# Target tracking on the publisher's WorkPerInstance, (visible + in flight) / InService: the group
# grows and shrinks so that each in-service worker has about work_per_instance_target messages
# waiting or in hand. Counting the messages being worked keeps the fleet from scaling in under
# running jobs (visible alone reads 0 while every worker is busy and nothing waits).
resource "aws_autoscaling_policy" "backlog" {
  name                      = "${var.name}-work-per-instance"
  autoscaling_group_name    = aws_autoscaling_group.workers.name
  policy_type               = "TargetTrackingScaling"
  estimated_instance_warmup = var.instance_warmup_seconds

  target_tracking_configuration {
    target_value = var.work_per_instance_target

    customized_metric_specification {
      namespace   = var.metric_namespace
      metric_name = "WorkPerInstance"
      statistic   = "Average"
      period      = var.scaling_metric_period_seconds

      metric_dimension {
        name  = "QueueName"
        value = aws_sqs_queue.jobs.name
      }

      metric_dimension {
        name  = "AutoScalingGroupName"
        value = local.worker_asg
      }
    }
  }
}

# Safety net for the empty fleet: with 0 in-service instances target tracking has no capacity to
# multiply, so a visible message with a desired capacity of 0 adds the first worker directly.
resource "aws_autoscaling_policy" "wake" {
  name                   = "${var.name}-scale-out-from-zero"
  autoscaling_group_name = aws_autoscaling_group.workers.name
  policy_type            = "StepScaling"
  adjustment_type        = "ChangeInCapacity"

  step_adjustment {
    metric_interval_lower_bound = 0
    scaling_adjustment          = 1
  }
}

resource "aws_cloudwatch_metric_alarm" "wake" {
  alarm_name          = "${var.name}-work-waiting-no-workers"
  alarm_description   = "Messages are visible and the worker group's desired capacity is 0: add the first worker."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_autoscaling_policy.wake.arn]

  metric_query {
    id          = "wake"
    expression  = "IF(visible > 0 AND desired == 0, 1, 0)"
    label       = "Work waiting and no workers"
    return_data = true
  }

  metric_query {
    id = "visible"
    metric {
      namespace   = var.metric_namespace
      metric_name = "Visible"
      dimensions  = { QueueName = aws_sqs_queue.jobs.name }
      stat        = "Maximum"
      period      = 10
    }
  }

  metric_query {
    id = "desired"
    # The publisher's high-resolution copy of the group's desired capacity: AWS/AutoScaling's
    # own GroupDesiredCapacity is a 1-minute metric, and a metric-math alarm needs one period
    # for all its inputs. 10-second periods start the first worker within ~10 s of an upload
    # (see the scaling model in the README), instead of ~60 s.
    metric {
      namespace   = var.metric_namespace
      metric_name = "DesiredCapacity"
      dimensions  = { AutoScalingGroupName = aws_autoscaling_group.workers.name }
      stat        = "Maximum"
      period      = 10
    }
  }
}

# --- Publisher ----------------------------------------------------------------------------------
# Its own group of exactly one small instance: the worker group can shrink to zero while the
# backlog is still measured, and a lost publisher instance is replaced automatically.

resource "aws_launch_template" "publisher" {
  count                  = var.publisher_enabled ? 1 : 0
  name                   = "${var.name}-publisher"
  description            = "auto-lambda queue-metric-publisher (${var.name})"
  image_id               = local.ami_id
  instance_type          = var.publisher_instance_type
  update_default_version = true
  user_data              = base64encode(local.publisher_user_data)

  iam_instance_profile {
    arn = aws_iam_instance_profile.publisher.arn
  }

  network_interfaces {
    associate_public_ip_address = var.associate_public_ip_address
    security_groups             = [aws_security_group.instances.id]
    delete_on_termination       = true
  }

  metadata_options {
    http_endpoint               = local.metadata_options.http_endpoint
    http_tokens                 = local.metadata_options.http_tokens
    http_put_response_hop_limit = local.metadata_options.http_put_response_hop_limit
    instance_metadata_tags      = local.metadata_options.instance_metadata_tags
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 8
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-publisher", Role = "publisher" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${var.name}-publisher", Role = "publisher" })
  }
}

resource "aws_autoscaling_group" "publisher" {
  count               = var.publisher_enabled ? 1 : 0
  name                = local.publisher_asg
  min_size            = 1
  max_size            = 1
  desired_capacity    = 1
  vpc_zone_identifier = var.subnet_ids
  health_check_type   = "EC2"

  launch_template {
    id      = aws_launch_template.publisher[0].id
    version = aws_launch_template.publisher[0].latest_version
  }

  # A group of one: replace it in place (a few seconds without samples; the alarms tolerate it).
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 0
      skip_matching          = true
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-publisher"
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
