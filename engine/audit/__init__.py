"""Audit: does every source record that should be on the target sit there, unchanged?

Per partition, the offset map says which source offset was copied to which target offset. The
audit reads both partitions and checks, record by record, an xxhash64 over key, value, headers
(in order) and timestamp. It knows the flow's record filter (filtered records are expected gaps)
and reports, with their offsets:
  missing     source records the copy has passed but that are on the target nowhere
  differing   copies whose bytes differ from their source record
  duplicated  source records copied more than once (a restarted worker; at-least-once)
  foreign     target records the flow never wrote (another producer on a remote topic)
Source records below the source log start are not expected (retention removed them).
"""

