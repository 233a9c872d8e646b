"""Peerline's adapter: webhooks, admin API, database, scheduler and command line."""
