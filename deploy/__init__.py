"""Deploy-time commands for a real AWS account: `prepare` the backend, `harden` the lock stream's subscription.

Not part of the Lambda package: Chalice ships only `app.py` and `chalicelib/`.
"""
