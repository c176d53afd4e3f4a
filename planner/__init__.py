"""The planner: desired config × stored state → Plan (diff), Plan → step graph (graph),
and the walk that runs the steps (walk, apply). It never prints; it returns values and
emits events for whoever renders them."""
