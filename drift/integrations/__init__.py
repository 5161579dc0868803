"""The harness spoken in other tools' terms: mteb.

`mteb_search.DriftSearchModel` serves an upgrade strategy (new-model query -> adapter -> old-model
index, and the status quo, full re-index and lazy re-rank beside it) as an mteb search model, so
`mteb.evaluate` scores it on any mteb retrieval task and writes mteb's own result files;
`mteb_search.local_task` turns a harness dataset into an mteb retrieval task (offline data).
"""
