"""betadata"""
