"""The core: domain types, the plan, the ports, errors and vocabularies. Imports nothing else of ours."""
