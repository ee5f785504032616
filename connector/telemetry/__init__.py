"""What the connector tells its operators: Prometheus metrics and logs."""
