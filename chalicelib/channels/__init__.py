"""Notification channels that are not AWS resources: the console and a JSON-lines file."""
