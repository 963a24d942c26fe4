"""Optional engines, imported only on use (``bgr_core.integrations.ray``: Ray Data)."""
