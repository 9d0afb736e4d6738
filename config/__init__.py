"""Typed settings, the example configuration and the Slack app manifest."""
