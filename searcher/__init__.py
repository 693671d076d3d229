"""searcher: faceted search over the Spack build-cache listing."""

__version__ = "0.1.0"
