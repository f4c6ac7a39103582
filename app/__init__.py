"""dlserve: the FastAPI service (registry, auth, inference) and the pieces workers share with it."""
