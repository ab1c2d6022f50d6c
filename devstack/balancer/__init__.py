"""The load balancer in front of the instances: its configuration (render), the lint of what the project
declares for it, and what it says of each instance (its statistics)."""
