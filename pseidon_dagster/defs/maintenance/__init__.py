"""Keeping the lake healthy, per log (a `logs` partition), on schedules that are off by default:

    jobs.py       compact_job (many/small files of closed hours -> fewer), retention_job (expired hours and
                  quarantine files), redrive_job (quarantined messages that now parse)
    schedules.py  compaction_schedule (hourly) and retention_schedule (daily), one run per enabled log

Each job runs the plain-Python operation (core/compact.py, core/retention.py, core/redrive.py) under the log's
lease, and reports the hours it changed as lake_files materializations.
"""
