"""The dashboard's screens, one per module with its .tcss beside it."""
