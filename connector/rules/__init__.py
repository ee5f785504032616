"""Promotion rules: the condition language at work, the rule book, the promoter and the back-test."""
