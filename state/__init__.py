"""Stored state: the model of what berth made (model), where it is kept (store), and
the lock that keeps two applies apart (lock)."""
