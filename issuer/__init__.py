"""Credential issuer service (OpenID4VCI 1.0). Built in issue 3."""
