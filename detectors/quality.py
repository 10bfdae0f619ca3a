"""Data-quality checks between a reference profile and a window profile."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from driftline.detectors.profile import OTHER, CategoricalSummary, NumericSummary, Profile

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


def at_least(severity: str, floor: str) -> bool:
    """Whether ``severity`` is ``floor`` or worse (``floor`` ``"off"`` admits nothing)."""
    ranks: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
    return floor in ranks and ranks.get(severity, 1) >= ranks[floor]


@dataclass(frozen=True)
class QualityIssue:
    """One data-quality finding.

    ``severity``: ``critical`` when a feature is gone for the whole window (its column is missing, every value is
    missing, or no value could be read as the reference's type): the model ran on defaults, an incident whatever the
    drift tests say. ``warning`` for a partial integrity problem a person should look at (more values missing, some
    values of another type); ``info`` for what needs no action of its own: a new column, and values out of the
    reference's range or in unseen categories, which are distribution changes the drift tests already judge.
    """

    check: str  # missing_column | extra_column | type_change | missing_rate | out_of_range | unseen_categories
    feature: str
    value: float | None
    threshold: float | None
    message: str
    severity: Severity = "warning"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _family(arrow_type: str) -> str:
    if arrow_type.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return "numeric"
    if arrow_type in {"bool"}:
        return "boolean"
    if arrow_type.startswith(("string", "large_string", "dictionary")):
        return "text"
    return arrow_type


def _schema_issues(
    reference: Profile, current: Profile, current_columns: list[str] | None, present: set[str]
) -> list[QualityIssue]:
    issues: list[QualityIssue] = []
    for name in reference.feature_types:
        absent = (
            name not in current_columns if current_columns is not None else (name not in present and current.rows > 0)
        )
        if absent:
            issues.append(
                QualityIssue(
                    "missing_column",
                    name,
                    None,
                    None,
                    f"column {name!r} is in the reference but not in the current data (renamed or no longer sent)",
                    "critical",
                )
            )
    if current_columns is not None:
        # A column the reference left out (an identifier, the label) is expected, not new.
        for name in sorted(set(current_columns) - set(reference.feature_types) - set(reference.excluded)):
            issues.append(
                QualityIssue(
                    "extra_column",
                    name,
                    None,
                    None,
                    f"column {name!r} is new: the reference has no such feature",
                    "info",
                )
            )
    return issues


def quality_checks(
    reference: Profile,
    current: Profile,
    current_columns: list[str] | None = None,
    *,
    missing_rate_tolerance: float = 0.05,
    out_of_range_tolerance: float = 0.01,
    unseen_tolerance: float = 0.01,
) -> list[QualityIssue]:
    """Every problem found; an empty list means the window passed all checks.

    * ``missing_column`` / ``extra_column``: schema differences (extra only when
      ``current_columns`` is given);
    * ``type_change``: the column's type family changed (e.g. numbers became text);
    * ``missing_rate``: the share of missing values moved by more than the tolerance;
    * ``out_of_range``: share of numeric values outside the reference's [min, max];
    * ``unseen_categories``: share of values in categories the reference never had.
    """
    present = set(current.source_types)
    issues = _schema_issues(reference, current, current_columns, present)
    for name, ref in reference.summaries.items():
        cur = current.summaries.get(name)
        if cur is None or name not in present:
            continue
        ref_type, cur_type = reference.source_types.get(name), current.source_types.get(name)
        non_numeric = cur.non_numeric if isinstance(cur, NumericSummary) else 0
        numeric_as_text = non_numeric > 0
        none_readable = isinstance(cur, NumericSummary) and numeric_as_text and cur.count == 0
        if (ref_type and cur_type and _family(ref_type) != _family(cur_type)) or numeric_as_text:
            issues.append(
                QualityIssue(
                    "type_change",
                    name,
                    None,
                    None,
                    f"column {name!r} was {ref_type} in the reference and is {cur_type} now"
                    + (f" ({non_numeric} values are not numbers)" if numeric_as_text else ""),
                    "critical" if none_readable else "warning",
                )
            )
        ref_total, cur_total = ref.count + ref.missing, cur.count + cur.missing
        if ref_total and cur_total:
            ref_rate, cur_rate = ref.missing / ref_total, cur.missing / cur_total
            if abs(cur_rate - ref_rate) > missing_rate_tolerance:
                issues.append(
                    QualityIssue(
                        "missing_rate",
                        name,
                        cur_rate,
                        missing_rate_tolerance,
                        f"{name!r}: {cur_rate:.1%} missing now vs {ref_rate:.1%} in the reference",
                        "critical" if cur.count == 0 else "warning",
                    )
                )
        if isinstance(cur, NumericSummary) and cur.count:
            share = cur.out_of_range / cur.count
            if share > out_of_range_tolerance:
                assert isinstance(ref, NumericSummary)
                issues.append(
                    QualityIssue(
                        "out_of_range",
                        name,
                        share,
                        out_of_range_tolerance,
                        f"{name!r}: {share:.1%} of values outside the reference range "
                        f"[{ref.minimum:.4g}, {ref.maximum:.4g}]",
                        "info",  # a distribution change: the drift tests judge it
                    )
                )
        if (
            isinstance(cur, CategoricalSummary)
            and isinstance(ref, CategoricalSummary)
            and cur.count
            and OTHER not in ref.counts
            and ref.hashed is None  # an id-like feature's reference keeps buckets, not its values
        ):
            unseen = {k: v for k, v in cur.counts.items() if k not in ref.counts}
            share = sum(unseen.values()) / cur.count
            if share > unseen_tolerance:
                examples = ", ".join(sorted(unseen, key=lambda k: -unseen[k])[:5])
                issues.append(
                    QualityIssue(
                        "unseen_categories",
                        name,
                        share,
                        unseen_tolerance,
                        f"{name!r}: {share:.1%} of values in categories the reference never had ({examples})",
                        "info",  # a distribution change: the drift tests judge it
                    )
                )
    return issues
