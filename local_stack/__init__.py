"""The embedded local stack: the whole guardian on one machine, on a moto server, with no AWS account.

Not part of the Lambda package: Chalice ships only `app.py` and `chalicelib/`.
"""
