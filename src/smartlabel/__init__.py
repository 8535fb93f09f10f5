"""smartlabel: label text with active learning."""

__version__ = "0.1.0"

DEFAULT_LABELS = (
    "Social Issue Discussion",
    "Personal Stories",
    "Advocacy",
    "Factual Queries/Sharing",
    "Others",
)
