"""The control plane at the edge: admin REST routes and the dashboard served from package files."""
