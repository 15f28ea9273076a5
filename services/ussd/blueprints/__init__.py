"""HTTP blueprints of the USSD service, one per resource."""
