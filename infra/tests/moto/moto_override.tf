# Test only: points the module's provider at the moto emulator. dev/test-infra.sh copies the
# module and this file into a scratch directory; infra/ itself never contains it.
provider "aws" {
  region     = var.region
  access_key = "testing"
  secret_key = "testing"

  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    autoscaling = var.moto_endpoint
    cloudwatch  = var.moto_endpoint
    ec2         = var.moto_endpoint
    events      = var.moto_endpoint
    iam         = var.moto_endpoint
    lambda      = var.moto_endpoint
    logs        = var.moto_endpoint
    s3          = var.moto_endpoint
    sns         = var.moto_endpoint
    sqs         = var.moto_endpoint
    sts         = var.moto_endpoint
  }

  default_tags {
    tags = local.tags
  }
}
