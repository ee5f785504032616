"""The work behind ``mim-connector`` subcommands; :mod:`connector.commands.cli` parses and maps errors to exit codes."""
