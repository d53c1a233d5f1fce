"""smartcity: an open smart-city platform (community mapping, safety service, open data, city sensors)."""

__version__ = "0.1.0"
