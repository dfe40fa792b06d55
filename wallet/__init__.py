"""Cloud holder wallet service. Built in issue 4."""
