"""Services: the guardian's use cases, built from domain code and adapters."""
