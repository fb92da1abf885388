"""The inference runtime's Lambda layer: pinned requirements and a Docker-free build."""
