"""The work behind ``mim-connector`` subcommands; :mod:`connector.cli` parses and maps errors to exit codes."""
