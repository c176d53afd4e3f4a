"""The files users write, and the readers that turn them into a planner.desired.Stack; bad
input comes out as Diagnostic values inside a DiagnosticsError, never as a traceback.

load is the entry point (find_stack_file, load_stack). files finds the stack file and
names its format; source is one file being read and its problems, for every format;
models holds berth.toml's tables as written, locate finds a key's line in TOML text,
yamlfile reads YAML with lines; berth_toml reads a berth.toml, with checks (what spans
tables) and normalise (tables -> planner.desired values); platforms/ reads the
platforms' own formats (cerebrium.toml, Truss config.yaml) and stages their builds.
"""
