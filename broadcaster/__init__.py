"""broadcaster: self-hosted campaign fan-out for chat."""

__version__ = "0.1.0"
