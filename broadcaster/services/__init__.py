"""Use cases called by both the API and the jobs (campaigns: services/campaigns.py, the
send path: services/sending.py). They call the store and the pure domain; no HTTP."""
