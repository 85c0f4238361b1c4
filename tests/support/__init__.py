"""Test helpers: a reply-dropping TCP proxy and the chaos test's own tasks."""
