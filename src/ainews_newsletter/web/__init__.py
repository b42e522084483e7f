"""The web entry point: the writer's local preview and the readers' public pages.

preview   `ainews preview`: the issue as it would go, live-reloading, on 127.0.0.1 only
public    `ainews serve`: subscribe (double opt-in), confirm, one-click unsubscribe,
          preferences, the archive of sent issues and its Atom feed
security  signed tokens, CSRF, throttling and the headers every page sends"""
