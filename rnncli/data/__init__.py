"""Data readers, vocabularies and batching shared by the tasks."""
