"""Pure domain code: no boto3, no chalice, no environment; time comes in as an argument."""
