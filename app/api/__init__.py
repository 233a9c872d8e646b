"""The admin API under /api/v1: JSON for nurses, staff, admins and integrations."""
