"""The project's tests (pytest) and the gradient-check helper for Python layers."""
