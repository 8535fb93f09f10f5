"""smartlabel: label text with active learning."""

__version__ = "0.1.0"

# Tag sets an operator can name in LABELS (`LABELS=article`) instead of listing tags.
LABEL_PRESETS = {
    # The bundled demo data (aldata.csv, Reuters news stories): what kind of news each is.
    "reuters": ("Earnings", "Acquisitions", "Economy", "Energy", "Agriculture", "Metals"),
    # The article's five tags, for Reddit-style discussion posts.
    "article": (
        "Social Issue Discussion",
        "Personal Stories",
        "Advocacy",
        "Factual Queries/Sharing",
        "Others",
    ),
}
DEFAULT_PRESET = "reuters"
DEFAULT_LABELS = LABEL_PRESETS[DEFAULT_PRESET]
