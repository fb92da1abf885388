"""Operate a deployed stack: what serves now (status), put the previous version back (rollback), what happened
(history). Everything is found from the stack's outputs and read with boto3's standard credential chain."""
