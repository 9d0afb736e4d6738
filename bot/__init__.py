"""The winpod bot: command line, Slack app, scheduler and store."""
