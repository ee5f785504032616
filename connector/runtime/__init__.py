"""The running connector: assembly from configuration, the daemon, its lease, health and live view."""
