"""Verifier service (OpenID4VP 1.0). Built in issue 5."""
