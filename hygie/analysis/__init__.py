"""Code to data: analyses run inside the platform on a project's view, and nothing leaves but what disclosure
control and, where needed, two output checkers let out. See docs/analysis.md."""
