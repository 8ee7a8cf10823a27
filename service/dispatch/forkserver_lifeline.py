"""Imported first by the fork server of ``isolated`` (its preload list), never elsewhere: the fork
server then dies with the process that started it, even while it is still importing torch (it
checks for its parent's exit only between requests)."""

from devices.lifeline import die_with_parent

die_with_parent()
