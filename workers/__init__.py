"""ML engine: plain Python + torch. Never imports django."""
