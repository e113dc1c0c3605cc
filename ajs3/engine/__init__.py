"""The engine: readiness rules, the scheduler, the job runner and recovery."""
