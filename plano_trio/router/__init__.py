"""Preference-based routing, pure: the router prompt, its reply, ranking, sessions and the routing budget.

Nothing here does I/O.  The gateway's route stage feeds these functions the
request's JSON, the router model's reply, the metrics feeds' latest snapshot
and a session binding read from the session store, and acts on what they
return.
"""
