"""courier"""
