"""tfstate-guardian: notifications, verified lock release and rollback for Terraform S3 backends."""
