"""The subscribers room: the list a publisher cannot lose. Store, schema, addresses, CSV."""
