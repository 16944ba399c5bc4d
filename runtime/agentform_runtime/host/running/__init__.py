"""Running workloads: worker processes, their pools and the Lambda Runtime API they poll."""
