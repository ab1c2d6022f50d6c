"""The one seam around Docker: `engine` is the only module that imports the Docker SDK."""
