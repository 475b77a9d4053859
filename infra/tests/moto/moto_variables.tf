# Test only (see moto_override.tf): the emulator's endpoint, e.g. http://127.0.0.1:5000.
variable "moto_endpoint" {
  description = "Endpoint of the moto server the test applies against."
  type        = string
}
