"""transitions"""
