"""modelrail: the command line and the local environment (embedded AWS, local gateway, Lambda workers)."""

__version__ = "0.1.0"
