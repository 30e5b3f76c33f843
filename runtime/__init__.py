"""Running plans: the Session, variable storage, and the executors (reference NumPy for now)."""
