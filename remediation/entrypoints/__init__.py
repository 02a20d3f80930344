"""Entry points: the command line and the demo (the Functions app comes later)."""
