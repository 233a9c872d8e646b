"""Twilio's side of the wire, for development and tests: telephone, terminal phone, fake REST API.

Only app/cli.py and the tests import this package."""
