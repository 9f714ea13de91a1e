"""What a command's process sets up: quiet imports, thread settings, help formatting."""
