"""Verifier service (OpenID4VP 1.0, issue 5): employer API, signed requests, the Response
Endpoint, the named-check verification pipeline, results, retention and withdrawal.
See docs/verifier.md."""
