"""The request's vocabulary: the ground floor every other part of Tollway may import.

It imports nothing of Tollway's but `tollway.errors` (the error tree, the other module of
this floor).
"""
