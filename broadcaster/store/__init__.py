"""All SQL lives in this package; handlers call these functions and never hold SQL."""
