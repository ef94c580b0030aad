"""The issuer: the URL that access tokens name (`iss`) and the metadata is based on.

Where it comes from when not configured (addresses.py), a warning when requests come
for another host (hosts.py), and its record in the shared database, so that instances
that disagree about it say so (record.py).
"""
