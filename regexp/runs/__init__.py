"""Run and sweep directories on disk: what a run writes and reads back
(:mod:`~regexp.runs.run_files`), sweep folders (lock, resume, job list), collecting a sweep's
results, experiment trackers and the console."""
