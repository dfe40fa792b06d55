"""Shared service plumbing: settings, database, errors, eID login, base templates."""
