"""Model weights on a host: the content-addressed cache and the program that fills it.

fetch_script.py runs on the host (in a short-lived helper container with the host's weights
cache mounted); it imports nothing of berth, as planner/serving/watcher_script.py does not.
"""
