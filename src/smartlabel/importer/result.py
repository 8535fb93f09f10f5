"""What an import did: `ImportResult`, whose `summary()` the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportResult:
    """What an import did. `summary()` is the text the CLI prints."""

    path: str
    database: str = ""
    rows: int = 0  # data rows read
    added: int = 0  # new posts
    already_present: int = 0  # rows whose post was in the database before this import
    duplicates_in_file: int = 0  # rows repeating an earlier row of the same file
    empty: int = 0  # rows with neither title nor selftext: skipped
    id_conflicts: int = 0  # rows whose id is taken by a different post: not imported
    labels_added: int = 0
    labels_present: int = 0  # the same worker had already given this label
    labels_conflicting: int = 0  # the same worker had given another label: stored one kept
    seconds: float = 0.0
    transactions: int = 1  # SQLite commits in chunks: how many transactions wrote the rows
    notes: list[str] = field(default_factory=list)  # first example line of each anomaly

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [
            f"imported {self.path} into {self.database}" if self.database else f"imported {self.path}",
            f"  rows read:        {self.rows:,}",
            f"  posts added:      {self.added:,}",
            f"  already present:  {self.already_present:,}",
        ]
        if self.duplicates_in_file:
            lines.append(f"  repeated in file: {self.duplicates_in_file:,}")
        if self.empty:
            lines.append(f"  empty (skipped):  {self.empty:,}")
        if self.id_conflicts:
            lines.append(f"  id conflicts:     {self.id_conflicts:,} (not imported)")
        lines.append(f"  labels imported:  {self.labels_added:,}")
        if self.labels_present:
            lines.append(f"  labels present:   {self.labels_present:,}")
        if self.labels_conflicting:
            lines.append(f"  labels differing: {self.labels_conflicting:,} (stored labels kept)")
        lines.append(f"  time:             {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

