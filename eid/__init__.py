"""Development OpenID Provider simulating BankID test persons (never in production). Built in issue 4."""
