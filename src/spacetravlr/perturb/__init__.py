"""perturb"""
