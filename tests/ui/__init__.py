"""UI tests: the dashboard under Pilot."""
