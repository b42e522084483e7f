"""The render room: an Issue becomes HTML (Jinja2 → MJML → css-inline) and plain text, once."""
