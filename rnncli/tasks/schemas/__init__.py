"""Each task's config keys (`SCHEMA`) and cross-key rules (`check`), one module per task, without
torch: the config is read, checked and printed (`rnncli config show`, `config keys`, every config
error) before torch is imported. The task modules (rnncli/tasks/<task>.py) import theirs from here."""
