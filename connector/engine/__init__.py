"""The engine: prepare -> record -> send -> settle, the same for every job and every
transport. Import its modules directly (this package imports nothing).
"""
