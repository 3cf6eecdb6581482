"""Fine-tune and compression jobs on the shared Job lifecycle (llmops.jobs): FineTuneJob, CompressionJob, Study."""
