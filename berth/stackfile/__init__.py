"""The files users write, and the loaders that turn them into a planner.desired.Stack.

models holds the berth.toml models as written, locate finds a key's line in TOML text,
yamlfile reads YAML with lines, load is the entry point (find_stack_file, load_stack), and
platforms/ reads the platforms' own formats (cerebrium.toml, Truss config.yaml). Bad input
comes out as Diagnostic values inside a DiagnosticsError, never as a traceback.
"""
