"""What a person sees: pure views of snapshots and events, and the live screen that shows them."""
