"""Helpers shared by the tests: tiny real image folders and workspaces, live servers, skip policy.

Test modules import from here, never from one another (`conftest` holds only fixtures).
"""
