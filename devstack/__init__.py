"""devstack: the Elastic Beanstalk Jupyter-notebook deployment, on one machine."""

__version__ = "0.1.0"
