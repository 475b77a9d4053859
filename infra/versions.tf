terraform {
  # 1.5: `check` blocks and the modern `import`; tested with 1.11.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Tested with 5.100. Only the AWS provider is used, so the module installs anywhere the
      # registry (or a mirror of hashicorp/aws) is reachable.
      version = ">= 5.70.0, < 6.0.0"
    }
  }
}
