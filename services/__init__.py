"""Example services built on aegis_actors."""
