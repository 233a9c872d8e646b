"""Business operations on the database. They flush but never commit: the caller owns the transaction."""
