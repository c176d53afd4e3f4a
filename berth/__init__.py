"""berth: deploy model servers onto local Docker or SSH GPU hosts, Terraform-style.

This package is the front door: the command line (cli), the files users write (stackfile/)
and terminal rendering (ui). It is the only package that prints.
"""

__version__ = "0.1.0"
