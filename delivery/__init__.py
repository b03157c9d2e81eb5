"""Delivery targets: one module per target behind one small interface (`delivery.base`)."""
