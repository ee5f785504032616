"""Mirroring decisions for one incident x supplier. Pure: views in, plans out."""
