"""Configuration: the YAML schema and its loader, credentials, and the checks that make a
bad value an error naming file, line and key.
"""
