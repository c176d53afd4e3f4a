"""Errors the state layer raises; the CLI turns them into one-line messages."""


class StateError(Exception):
    """The store is unreadable, corrupt or otherwise unusable; carries its path."""


class LockError(StateError):
    """Another berth holds the state lock."""


class CorruptLockError(StateError):
    """The lock record cannot be read; `berth force-unlock` clears it."""


class LockLostError(StateError):
    """The lock this berth held is no longer its own (force-unlocked, taken by another):
    it writes no more state, and an apply starts no more steps."""
