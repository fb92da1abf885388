"""The local environment: AWS as moto's server on loopback, Lambda execution environments as worker
processes, and a gateway that speaks API Gateway's REST proxy integration."""
