# Inputs of the auto-lambda stack. Only `vpc_id` and `subnet_ids` have no default; everything
# else is sized for a small team and documented in infra/README.md.

# --- Naming and placement -------------------------------------------------------------------

variable "region" {
  description = "AWS region of the whole stack."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name (bucket, queues, roles, groups, alarms, dashboard). Lower-case letters, digits and dashes."
  type        = string
  default     = "auto-lambda"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC of the worker and publisher instances."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the instances. They need outbound HTTPS to the AWS APIs (NAT gateway or VPC endpoints) and, for dependency builds, to PyPI and the build image registry."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet."
  }
}

variable "associate_public_ip_address" {
  description = "Give instances a public IP (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "egress_cidr_blocks" {
  description = "Where instances may connect to, on TCP 443 only. Narrow it to VPC endpoint and proxy ranges where you have them."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ami_id" {
  description = "AMI built from ami/ with Packer. Null: the newest AMI of this account named \"<ami_name_prefix>*\"."
  type        = string
  default     = null
}

variable "ami_name_prefix" {
  description = "Name prefix used to find the AMI when ami_id is null (Packer's ami_name_prefix)."
  type        = string
  default     = "auto-lambda-worker"
}

# --- Bucket ---------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the upload bucket. Null: \"<name>-<account id>-<region>\"."
  type        = string
  default     = null
}

variable "force_destroy_bucket" {
  description = "Let `terraform destroy` delete a bucket that still holds objects. Keep false in production."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key for the bucket's default encryption. Null: SSE-S3 (AES-256). The instance roles get Decrypt/GenerateDataKey on it."
  type        = string
  default     = null
}

variable "access_log_bucket" {
  description = "Bucket that receives the upload bucket's S3 server access logs. Null: no access logging."
  type        = string
  default     = null
}

variable "source_prefix" {
  description = "Key prefix of uploads; only keys under it ending in .zip start a job."
  type        = string
  default     = "apps/"
}

variable "status_prefix" {
  description = "Key prefix of the status reports. Must be outside source_prefix."
  type        = string
  default     = "status/"
}

variable "artifact_prefix" {
  description = "Key prefix of packages too large for a direct upload (> 50 MB), which Lambda reads from S3."
  type        = string
  default     = "artifacts/"
}

variable "status_retention_days" {
  description = "Days a status report is kept."
  type        = number
  default     = 90
}

variable "artifact_retention_days" {
  description = "Days a large-package artifact is kept (Lambda copies the code at deploy time)."
  type        = number
  default     = 7
}

variable "cache_retention_days" {
  description = "Days an entry of the shared dependency cache is kept after it was written."
  type        = number
  default     = 30
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version is kept (versioning is on)."
  type        = number
  default     = 30
}

# --- Queue ----------------------------------------------------------------------------------

variable "build_timeout_seconds" {
  description = "Longest a single build may take (AUTO_LAMBDA_BUILD_TIMEOUT_SECS). The queue's default visibility timeout is this plus 5 minutes."
  type        = number
  default     = 900
}

variable "worker_visibility_timeout_seconds" {
  description = "Visibility timeout the worker asks for per receive; its heartbeat renews it every third, so a crashed worker's job reappears within this time."
  type        = number
  default     = 60
}

variable "max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue."
  type        = number
  default     = 5
}

variable "message_retention_seconds" {
  description = "How long the main queue keeps a message."
  type        = number
  default     = 345600 # 4 days
}

variable "enable_redrive_allow_policy" {
  description = "Allow only the job queue to use the DLQ as its dead-letter queue (SQS RedriveAllowPolicy). Off only for emulators that lack it."
  type        = bool
  default     = true
}

variable "dlq_retention_seconds" {
  description = "How long the dead-letter queue keeps a message."
  type        = number
  default     = 1209600 # 14 days, the maximum
}

# --- Lambda ---------------------------------------------------------------------------------

variable "function_prefix" {
  description = "Prefix of every function the worker creates; IAM scopes the worker to function:<prefix>*. Null: \"<name>-\"."
  type        = string
  default     = null

  validation {
    condition     = var.function_prefix == null || can(regex("^[A-Za-z0-9_-]{1,40}$", var.function_prefix))
    error_message = "function_prefix must be 1-40 characters of letters, digits, '-' and '_'; an empty prefix would let the worker touch every function."
  }
}

variable "lambda_execution_policy_arns" {
  description = "Extra managed policies for the functions' execution role (e.g. AWSLambdaVPCAccessExecutionRole, or your own for the AWS resources your apps use)."
  type        = list(string)
  default     = []
}

variable "allowed_layer_arns" {
  description = "Layer version ARNs (wildcards allowed) that lambda.toml may name; the worker needs lambda:GetLayerVersion on them."
  type        = list(string)
  default     = []
}

# --- Function URLs, traffic shifting, deployment events -------------------------------------

variable "deploy_alarm_name_patterns" {
  description = "Names (wildcards allowed) of the CloudWatch alarms that apps may name in lambda.toml ([deploy] alarms) to check a gradual traffic shift; the worker may read (cloudwatch:DescribeAlarms) only these metric alarms of this account and region. [\"*\"]: any metric alarm here. Composite alarms need deploy_alarms_composite."
  type        = list(string)
  default     = ["*"]

  validation {
    condition     = length(var.deploy_alarm_name_patterns) > 0 && alltrue([for p in var.deploy_alarm_name_patterns : length(p) > 0])
    error_message = "deploy_alarm_name_patterns must list at least one non-empty name or pattern."
  }
}

variable "deploy_alarms_composite" {
  description = "Let apps name composite alarms too. AWS answers DescribeAlarms for composite alarms only to a permission on Resource \"*\" (any alarm of the account, read-only), so this replaces deploy_alarm_name_patterns with \"*\"."
  type        = bool
  default     = false
}

variable "events_bus_enabled" {
  description = "Send deployment events (source auto-lambda, detail-type \"auto-lambda Deployment State Change\") to an EventBridge bus (AUTO_LAMBDA_EVENTS_BUS)."
  type        = bool
  default     = true
}

variable "events_bus_name" {
  description = "EventBridge bus for deployment events. Null: a dedicated bus \"<name>-deployments\" created by the stack. A name (e.g. \"default\") or ARN: that existing bus, which the stack does not create; the worker may PutEvents to it only."
  type        = string
  default     = null

  validation {
    condition     = var.events_bus_name == null || can(regex("^(arn:[^:]+:events:[^:]+:[0-9]{12}:event-bus/)?[A-Za-z0-9._/-]{1,256}$", var.events_bus_name))
    error_message = "events_bus_name must be an EventBridge bus name (letters, digits, . _ - /) or a bus ARN."
  }
}

variable "events_topic_enabled" {
  description = "Create the SNS topic \"<name>-deployments\" and publish deployment events to it (AUTO_LAMBDA_EVENTS_TOPIC). Subscribe e-mail, chat or queue endpoints to it."
  type        = bool
  default     = true
}

variable "events_topic_kms_key_id" {
  description = "KMS key of the deployment events topic: \"alias/aws/sns\" (the AWS managed key; no key policy to maintain) or your key's ARN (the worker gets GenerateDataKey/Decrypt on it)."
  type        = string
  default     = "alias/aws/sns"
}

variable "canary_alarm_function" {
  description = "Full name of a deployed function (it must start with the function prefix) for which to create an example canary alarm on its alias's errors (AWS/Lambda Errors, Resource <function>:<alias>, 60 s). Name the alarm in the app's lambda.toml ([deploy] alarms) to roll back a shift that raises it. Null: no alarm."
  type        = string
  default     = null
}

variable "canary_alarm_alias" {
  description = "Alias the canary alarm watches (the alias the worker shifts; lambda.toml's alias, \"live\" by default)."
  type        = string
  default     = "live"
}

variable "canary_alarm_threshold" {
  description = "The canary alarm fires when the alias has more errors than this in one minute."
  type        = number
  default     = 0
}

# --- Worker fleet ---------------------------------------------------------------------------

variable "worker_instance_type" {
  description = "Instance type of the workers. Builds are CPU-bound; the architecture must match the AMI's."
  type        = string
  default     = "c7i.large"
}

variable "worker_min_size" {
  description = "Fewest workers. 0 lets the fleet shrink to nothing when the queue is empty."
  type        = number
  default     = 0
}

variable "worker_max_size" {
  description = "Most workers."
  type        = number
  default     = 4
}

variable "worker_desired_capacity" {
  description = "Workers at creation. Null: worker_min_size. Afterwards the scaling policies own it (Terraform ignores drift)."
  type        = number
  default     = null
}

variable "worker_root_volume_gb" {
  description = "Root volume (gp3, encrypted) of a worker: build images, the dependency cache and per-job temp dirs live here."
  type        = number
  default     = 50
}

variable "worker_concurrency" {
  description = "Jobs per worker (AUTO_LAMBDA_CONCURRENCY). Null: the number of vCPUs."
  type        = number
  default     = null
}

variable "shutdown_grace_seconds" {
  description = "On SIGTERM, how long in-flight jobs may finish (AUTO_LAMBDA_SHUTDOWN_GRACE_SECS). systemd's TimeoutStopSec is set 30 s above it."
  type        = number
  default     = 60
}

variable "work_per_instance_target" {
  description = "Target of the target-tracking policy on WorkPerInstance: messages waiting or in hand per in-service worker. The worker's concurrency means \"every worker busy, nothing waiting\"; below it the fleet keeps spare slots."
  type        = number
  default     = 2
}

variable "warm_pool" {
  description = "Keep a warm pool of pre-initialised, stopped workers beside the group, so that a scale-out starts an instance (about 20-40 s) instead of booting one (about 90 s). Stopped instances cost only their EBS volumes (worker_root_volume_gb each)."
  type        = bool
  default     = true
}

variable "warm_pool_min_size" {
  description = "Fewest stopped workers kept in the warm pool, even when the group is at its largest. 0 (AWS's default): the pool holds what the prepared capacity leaves room for."
  type        = number
  default     = 0
}

variable "warm_pool_max_group_prepared_capacity" {
  description = "Most workers in the group and its warm pool together (running or stopped). Null: worker_max_size, so the pool holds worker_max_size minus the running workers."
  type        = number
  default     = null
}

variable "scaling_metric_period_seconds" {
  description = "Period of WorkPerInstance that target tracking evaluates: 10 or 30 (high resolution, reacts within a minute) or 60."
  type        = number
  default     = 10

  validation {
    condition     = contains([10, 30, 60], var.scaling_metric_period_seconds)
    error_message = "scaling_metric_period_seconds must be 10, 30 or 60."
  }
}

variable "worker_ready_timeout_seconds" {
  description = "How long a launching worker may take to become ready (Docker, build images, the verifier) before Auto Scaling abandons the instance and launches another. The worker completes the launch lifecycle hook when ready."
  type        = number
  default     = 600

  validation {
    condition     = var.worker_ready_timeout_seconds >= 30 && var.worker_ready_timeout_seconds <= 7200
    error_message = "worker_ready_timeout_seconds must be between 30 and 7200 (the lifecycle hook's heartbeat timeout)."
  }
}

variable "instance_warmup_seconds" {
  description = "Seconds from launch until a new worker takes jobs (boot, docker, image check)."
  type        = number
  default     = 120
}

variable "scale_in_protection" {
  description = "Workers protect their instance from scale-in while they hold jobs (AUTO_LAMBDA_SCALE_IN_PROTECTION)."
  type        = bool
  default     = true
}

variable "build_mode" {
  description = "How dependencies are built: docker (a build container per job; wheels-only on the host for the other architecture) or wheels (prebuilt manylinux wheels on the host, no container; pip-platform is the old name)."
  type        = string
  default     = "docker"

  validation {
    condition     = contains(["docker", "wheels", "pip-platform"], var.build_mode)
    error_message = "build_mode must be docker or wheels (pip-platform is the old name of wheels)."
  }
}

variable "build_images" {
  description = "Build image per runtime (AUTO_LAMBDA_BUILD_IMAGES), e.g. { \"python3.12\" = \"123456789012.dkr.ecr.us-east-1.amazonaws.com/sam/build-python3.12:latest\" }. Unlisted runtimes use public.ecr.aws/sam/build-<runtime>, which the AMI pre-pulls."
  type        = map(string)
  default     = {}
}

variable "build_ca_bundle" {
  description = "CA bundle on the instance that dependency builds trust, in build containers and for the worker's own uv (AUTO_LAMBDA_BUILD_CA_BUNDLE), for a TLS-intercepting proxy; e.g. /etc/pki/tls/certs/ca-bundle.crt. Null: none."
  type        = string
  default     = null
}

variable "worker_cache_max_gb" {
  description = "Size bound of a worker's local dependency cache (AUTO_LAMBDA_CACHE_MAX_BYTES), in GiB. Keep it well under worker_root_volume_gb, which also holds the build images."
  type        = number
  default     = 10
}

variable "worker_extra_environment" {
  description = "Extra lines for the worker's environment file, as NAME => value (e.g. AUTO_LAMBDA_BUILD_MEMORY_MB)."
  type        = map(string)
  default     = {}
}

variable "log_format" {
  description = "Log format of both binaries: json (for CloudWatch Logs Insights) or text."
  type        = string
  default     = "json"

  validation {
    condition     = contains(["json", "text"], var.log_format)
    error_message = "log_format must be json or text."
  }
}

# --- Publisher ------------------------------------------------------------------------------

variable "publisher_enabled" {
  description = "Run queue-metric-publisher on its own one-instance group. Without it the worker group never scales."
  type        = bool
  default     = true
}

variable "publisher_instance_type" {
  description = "Instance type of the publisher (same architecture as the AMI)."
  type        = string
  default     = "t3.micro"
}

variable "publisher_period_seconds" {
  description = "Seconds between samples (QMP_PERIOD_SECS, 1-60). Each sample is one PutMetricData request."
  type        = number
  default     = 10

  validation {
    condition     = var.publisher_period_seconds >= 1 && var.publisher_period_seconds <= 60
    error_message = "publisher_period_seconds must be between 1 and 60."
  }
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the custom metrics; the instance roles may publish only here."
  type        = string
  default     = "AutoLambda"
}

# --- Observability --------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch Logs groups the agent ships journald output to."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key for the log groups (its key policy must allow CloudWatch Logs). Null: CloudWatch Logs' own encryption."
  type        = string
  default     = null
}

variable "enable_dashboard" {
  description = "Create the CloudWatch dashboard."
  type        = bool
  default     = true
}

variable "enable_alarms" {
  description = "Create the alarms (DLQ not empty, oldest message age, failed deploys, rolled-back deploys, publisher silent)."
  type        = bool
  default     = true
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or recovers (e.g. an SNS topic)."
  type        = list(string)
  default     = []
}

variable "oldest_message_alarm_seconds" {
  description = "Alarm when the oldest message in the queue is older than this."
  type        = number
  default     = 900
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore so operators reach instances with Session Manager (no SSH, no inbound rule)."
  type        = bool
  default     = true
}
