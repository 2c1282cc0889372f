"""Adapters: the only code that talks to AWS; each owns one resource and translates its errors."""
