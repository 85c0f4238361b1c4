"""Test helpers: a reply-dropping TCP proxy, the chaos test's own tasks, and HTTP helpers."""
