"""The Sabong service's blueprints, one per resource."""
