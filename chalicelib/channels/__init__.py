"""Notification channels that are not AWS resources: Slack, Teams, PagerDuty, a webhook, the console, a file."""
