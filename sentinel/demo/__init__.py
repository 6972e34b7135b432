"""`sentinel demo`: a bundled, realistic history replayed into the embedded stack, then live runs.

`history` (the data and how it is moved in time), `summary` (what is printed), `runner` (the
stack, the replay, the live phase). The data is written by ``tools/build_demo_history.py``.
"""
