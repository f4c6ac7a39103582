"""Helpers shared by several families (numpy/Pillow only)."""
