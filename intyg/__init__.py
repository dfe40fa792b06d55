"""intyg: verifiable credentials for Sweden's skills and lifelong-learning data infrastructure.

The core package holds credential formats and protocol messages, one module per standard;
it imports no web framework, opens no database and does no network I/O by itself.
"""

__version__ = "0.1.0"
