# Plugins for Packer >= 1.7 (`packer init .` installs them). Kept apart from the template because
# Packer 1.6, which has the amazon-ebs builder built in, rejects this block: there, validate or
# build the template file by name (`packer build auto-lambda.pkr.hcl`).
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}
