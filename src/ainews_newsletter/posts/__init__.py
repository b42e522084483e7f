"""The posts room: load posts from their sources (loader) and pick an issue's posts (select)."""
