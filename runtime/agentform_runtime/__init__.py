"""Agentform runtime: the workload and the local serverless host."""
