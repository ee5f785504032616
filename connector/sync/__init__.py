"""The sync cycle: observe, decide with the mirror, apply plans safely through the ports."""
