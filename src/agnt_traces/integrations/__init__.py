"""Capturing traces from applications that call models through their own code."""
