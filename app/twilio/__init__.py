"""Everything that speaks Twilio: webhooks, signatures, the REST client."""
