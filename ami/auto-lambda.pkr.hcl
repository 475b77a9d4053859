# The instance image of auto-lambda: Amazon Linux 2023 with Docker, the two binaries, their
# systemd units, the CloudWatch agent and disk hygiene. One AMI serves both roles; the user data
# Terraform writes (infra/) decides which service an instance runs.
#
#   cargo build --release --bins
#   cd ami && packer init . && packer build -var region=eu-west-1 .
#
# The binaries must run on AL2023's glibc 2.34 (check: objdump -T BIN | grep GLIBC_2.3[5-9]
# prints nothing) and match `architecture`.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region to build the AMI in (the stack's region)."
}

variable "architecture" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64; the binaries and the instance types must match."
}

variable "instance_type" {
  type        = string
  default     = "c7i.large"
  description = "Instance type of the build instance."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (empty: the default VPC). It needs outbound HTTPS."
}

variable "binaries_dir" {
  type        = string
  default     = "../target/release"
  description = "Directory holding auto-lambda-worker and queue-metric-publisher."
}

variable "ami_name_prefix" {
  type        = string
  default     = "auto-lambda-worker"
  description = "AMI name prefix; infra/ finds the newest AMI by it when ami_id is not set."
}

variable "build_images" {
  type = list(string)
  default = [
    "public.ecr.aws/sam/build-python3.13:latest",
    "public.ecr.aws/sam/build-python3.12:latest",
    "public.ecr.aws/sam/build-python3.11:latest",
  ]
  description = "Build images pulled into the AMI, so that the first job on a new worker does not wait for a pull."
}

variable "root_volume_gb" {
  type        = number
  default     = 20
  description = "Root volume of the AMI; the launch template may give instances more (worker_root_volume_gb)."
}

locals {
  stamp = regex_replace(timestamp(), "[-:TZ]", "")
}

source "amazon-ebs" "al2023" {
  region          = var.region
  instance_type   = var.instance_type
  subnet_id       = var.subnet_id
  ssh_username    = "ec2-user"
  ami_name        = "${var.ami_name_prefix}-${local.stamp}"
  ami_description = "auto-lambda worker and queue-metric-publisher on Amazon Linux 2023 (${var.architecture})"

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-${var.architecture}"
      architecture        = var.architecture
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.root_volume_gb
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }

  tags = {
    Name         = "${var.ami_name_prefix}-${local.stamp}"
    Project      = "auto-lambda"
    Architecture = var.architecture
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/auto-lambda"]
  }

  provisioner "file" {
    source      = "${var.binaries_dir}/auto-lambda-worker"
    destination = "/tmp/auto-lambda/auto-lambda-worker"
  }

  provisioner "file" {
    source      = "${var.binaries_dir}/queue-metric-publisher"
    destination = "/tmp/auto-lambda/queue-metric-publisher"
  }

  # Without a trailing slash the directory itself is uploaded into the destination.
  provisioner "file" {
    source      = "${path.root}/systemd"
    destination = "/tmp/auto-lambda"
  }

  provisioner "file" {
    source      = "${path.root}/files"
    destination = "/tmp/auto-lambda"
  }

  provisioner "file" {
    source      = "${path.root}/install.sh"
    destination = "/tmp/auto-lambda/install.sh"
  }

  provisioner "shell" {
    environment_vars = [
      "STAGING=/tmp/auto-lambda",
      "BUILD_IMAGES=${join(" ", var.build_images)}",
    ]
    execute_command = "chmod +x {{ .Path }}; sudo -E {{ .Path }}"
    inline          = ["/bin/bash /tmp/auto-lambda/install.sh"]
  }

  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = true
  }
}
