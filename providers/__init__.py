"""Where steps run: the Provider protocol and its Docker engines (local, SSH).

Providers know Docker and hosts, nothing of plans or the CLI."""
