"""Terminal rendering: plans, apply progress, diagnostics, JSON documents.

The only code in berth that writes to the terminal. rich is imported here, never at
CLI start-up."""
