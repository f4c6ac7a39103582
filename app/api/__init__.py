"""HTTP routes. Thin: parse, call a service function, commit, shape the answer."""
