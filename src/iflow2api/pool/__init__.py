"""Many upstream accounts behind one endpoint: who serves a request, and what a failure means."""
