"""The Peerline call flow: pure Python, no web framework and no database.

Everything a caller hears is decided here from plain facts; `app/` loads the
facts, calls these functions and records the effects they return.
"""
