"""The files users write, and the loaders that turn them into a planner.desired.Stack.

stackfile holds the berth.toml models as written, locate finds a key's line in TOML text,
load is the entry point (find_stack_file, load_stack). Bad input comes out as
Diagnostic values inside a DiagnosticsError, never as a traceback.
"""
