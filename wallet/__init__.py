"""Cloud holder wallet service (issue 4): eID login, receiving credentials over OpenID4VCI,
credential pages. See docs/wallet.md."""
