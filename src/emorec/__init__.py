"""emorec."""
