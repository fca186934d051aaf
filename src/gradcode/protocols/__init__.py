"""Round protocols: what the master sends, how it reacts to each event and how it decodes,
with the worker-side task of each protocol (the nested codes' protocol lives here)."""
