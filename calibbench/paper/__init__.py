"""The paper: tables, figures and the document, built from a results/ tree (pure: data in,
files out)."""
