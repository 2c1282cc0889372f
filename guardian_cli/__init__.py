"""`tfguardian`: the command line for people, over the guardian's REST API."""
