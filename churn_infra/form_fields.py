"""Form fields that let operators edit JSON settings as plain lines instead of raw JSON.

A list of texts is one text a line; a mapping is one ``key = value`` a line. Both show the stored
JSON back in the same shape, so an operator never has to balance brackets or quotes, and a mistake
is named by its line number.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms


class LinesListField(forms.CharField):
    """A JSON list of strings, edited one item a line (blank lines ignored)."""

    widget = forms.Textarea(attrs={"rows": 4})

    def __init__(self, *args: Any, max_items: int | None = None, max_length_each: int | None = None, **kwargs: Any):
        self.max_items, self.max_length_each = max_items, max_length_each
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list):
            return [str(item) for item in value]
        if (value or "").strip().startswith("["):
            # A JSON list is accepted too (what the field showed before, and what scripts send).
            try:
                loaded = json.loads(value)
            except ValueError as exc:
                raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
            if not isinstance(loaded, list):
                raise forms.ValidationError("Expected a list of texts.")
            value = "\n".join(str(item) for item in loaded)
        items = [line.strip() for line in (value or "").splitlines() if line.strip()]
        if self.max_items is not None and len(items) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} lines.")
        for number, item in enumerate(items, start=1):
            if self.max_length_each is not None and len(item) > self.max_length_each:
                raise forms.ValidationError(f"Line {number}: at most {self.max_length_each} characters.")
        return items


class MappingField(forms.CharField):
    """A JSON object of strings, edited as ``key = value`` lines; ``key =`` maps to an empty string."""

    widget = forms.Textarea(attrs={"rows": 6})

    def __init__(self, *args: Any, separator: str = "=", **kwargs: Any):
        self.separator = separator
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return "\n".join(f"{key} {self.separator} {val}".rstrip() for key, val in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, str]:  # type: ignore[override]
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        if (value or "").strip().startswith("{"):
            # A JSON object is accepted too (what the field showed before, and what scripts send).
            try:
                loaded = json.loads(value)
            except ValueError as exc:
                raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
            if not isinstance(loaded, dict):
                raise forms.ValidationError("Expected an object of names to values.")
            return {str(k): "" if v is None else str(v) for k, v in loaded.items()}
        mapping: dict[str, str] = {}
        for number, line in enumerate((value or "").splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, val = line.partition(self.separator)
            if not sep or not key.strip():
                raise forms.ValidationError(f'Line {number}: write "name {self.separator} value".')
            if key.strip() in mapping:
                raise forms.ValidationError(f"Line {number}: {key.strip()!r} is given twice.")
            mapping[key.strip()] = val.strip()
        return mapping
