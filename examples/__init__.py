"""Runnable examples of podium crews."""
