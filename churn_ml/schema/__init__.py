"""The customer record of the public contract: its fields, and the rules that validate them.

One column-oriented validator serves every entry point. A single API record is validated as
columns of length one (about 0.1 ms); a 1,000-record batch or a million-row file chunk runs
the same rules over whole columns with numpy, so the rules exist exactly once.

* :mod:`.fields`: the fields, their order, allowed values and number ranges; ``MISSING``.
* :mod:`.values`: reading one value, or one column of values, of a field.
* :mod:`.validate`: the column-wise validator (``validate_columns``, ``validate_records``).
* :mod:`.result`: ``ValidationResult``, what the validator returns.
* :mod:`.telco`: the IBM Telco CSV layout and its churn labels (``load_telco_csv``).

The record's public names are importable from here, where some forty call sites in every
layer import them; the modules above are where each one lives.
"""

from churn_ml.schema.fields import (
    BOOL_FIELDS,
    CUSTOMER_ID_PATTERN,
    ENUM_ALIASES,
    ENUM_FIELDS,
    FIELD_ORDER,
    INTERNET_ADDON_FIELDS,
    INTERNET_ADDONS,
    KNOWN_FIELDS,
    MISSING,
    NUMBER_FIELDS,
    OPTIONAL_FIELDS,
    PHONE_LINES,
    RECORD_FIELDS,
    SCHEMA_VERSION,
    TOTAL_CHARGES_RELATIVE_TOLERANCE,
    YES_NO,
    NumberRule,
)
from churn_ml.schema.result import ValidationResult
from churn_ml.schema.telco import TELCO_COLUMNS, TELCO_LABEL_COLUMN, load_telco_csv, parse_churn_labels, telco_columns
from churn_ml.schema.validate import validate_columns, validate_record, validate_records

__all__ = [
    "BOOL_FIELDS",
    "CUSTOMER_ID_PATTERN",
    "ENUM_ALIASES",
    "ENUM_FIELDS",
    "FIELD_ORDER",
    "INTERNET_ADDONS",
    "INTERNET_ADDON_FIELDS",
    "KNOWN_FIELDS",
    "MISSING",
    "NUMBER_FIELDS",
    "OPTIONAL_FIELDS",
    "PHONE_LINES",
    "RECORD_FIELDS",
    "SCHEMA_VERSION",
    "TELCO_COLUMNS",
    "TELCO_LABEL_COLUMN",
    "TOTAL_CHARGES_RELATIVE_TOLERANCE",
    "YES_NO",
    "NumberRule",
    "ValidationResult",
    "load_telco_csv",
    "parse_churn_labels",
    "telco_columns",
    "validate_columns",
    "validate_record",
    "validate_records",
]
