"""The posts room: read posts from every configured source (sources) and pick an issue's posts
(select)."""
