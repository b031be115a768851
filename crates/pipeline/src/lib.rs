//! Pipeline: file sources, ingest, link, assess, warn, dead letters, batch commits.
