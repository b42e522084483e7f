"""The render room: an Issue becomes HTML (Jinja2 → MJML → premailer) and plain text, once."""
