"""Request validation with pydantic, answered in the field-error shape DRF front-ends know."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails

# pydantic error types, and the sentence a DRF front-end shows for each.
MESSAGES = {
    "missing": "This field is required.",
    "string_type": "Not a valid string.",
    "int_type": "A valid integer is required.",
    "int_parsing": "A valid integer is required.",
    "float_type": "A valid number is required.",
    "float_parsing": "A valid number is required.",
    "bool_type": "Must be a valid boolean.",
    "bool_parsing": "Must be a valid boolean.",
    "finite_number": "A valid number is required.",
}


class Body(BaseModel):
    """A JSON request body: strict about types (no "1" for 1), tolerant of keys it does not use."""

    model_config = ConfigDict(strict=True, extra="ignore", str_strip_whitespace=False)


class Query(BaseModel):
    """Query parameters: strings converted to their types; an empty value counts as absent."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def empty_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value != ""}
        return data


def one_of(choices: tuple[str, ...]) -> Any:
    """A string that must be one of `choices`, refused in the contract's words; an enum in the schema."""

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"Select one of: {', '.join(choices)}.")
        return value

    return Annotated[str, AfterValidator(check), Field(json_schema_extra={"enum": list(choices)})]


class Declares:
    """JSON-schema keywords that a field's own validator enforces, shown in its schema (a marker for
    `Annotated`, beside that validator), where pydantic's own constraint would answer in its words."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> Any:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


def refuse_null(value: Any) -> Any:
    if value is None:
        raise ValueError("This field may not be null.")
    return value


def without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional_not_null(kind: Any) -> Any:
    """A field a body may leave out but not send as null (a PATCH changes only what it sends): the
    schema shows the type alone, with neither null nor a default; null is refused in DRF's words."""
    return Annotated[kind, BeforeValidator(refuse_null), Field(json_schema_extra=without_default)]


# The JSON-schema keys that name the setting a constraint's value comes from; the document generator
# (handlers/openapi.py) replaces each with its keyword and the value the app runs with.
MIN_LENGTH_SETTING = "x-min-length-setting"
ENUM_SETTING = "x-enum-setting"
MAXIMUM_SETTING = "x-maximum-setting"
SETTING_KEYWORDS = {MIN_LENGTH_SETTING: "minLength", ENUM_SETTING: "enum", MAXIMUM_SETTING: "maximum"}


def min_length_from(setting: str) -> Any:
    """A string at least as long as the setting `setting` says: the value comes in the validation context
    (the handler passes the settings), and the OpenAPI document carries it as `minLength`."""

    def check(value: str, info: ValidationInfo) -> str:
        minimum = (info.context or {})[setting]
        if len(value) < minimum:
            raise ValueError(f"Ensure this field has at least {minimum} characters.")
        return value

    return Annotated[str, AfterValidator(check), Field(json_schema_extra={MIN_LENGTH_SETTING: setting})]


def one_of_setting(setting: str) -> Any:
    """A string that must be one of the choices the setting `setting` lists (the validation context
    brings them, as for min_length_from); the OpenAPI document carries them as its `enum`."""

    def check(value: str, info: ValidationInfo) -> str:
        choices = (info.context or {})[setting]
        if value not in choices:
            raise ValueError(f"Select one of: {', '.join(choices)}.")
        return value

    return Annotated[str, AfterValidator(check), Field(json_schema_extra={ENUM_SETTING: setting})]


def bound(value: Any) -> Any:
    """A limit as DRF writes it: 0, not the 0.0 of a float field."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def message_for(error: ErrorDetails) -> str:
    """The sentence for one pydantic error."""
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind in MESSAGES:
        return MESSAGES[kind]
    if kind == "string_too_short":
        if context.get("min_length") == 1:
            return "This field may not be blank."
        return f"Ensure this field has at least {context.get('min_length')} characters."
    if kind == "string_too_long":
        return f"Ensure this field has no more than {context.get('max_length')} characters."
    if kind in ("greater_than_equal", "greater_than"):
        return f"Ensure this value is greater than or equal to {bound(context.get('ge', context.get('gt')))}."
    if kind in ("less_than_equal", "less_than"):
        return f"Ensure this value is less than or equal to {bound(context.get('le', context.get('lt')))}."
    message = error["msg"].removeprefix("Value error, ")
    return message if message.endswith(".") else message + "."


def field_errors(err: ValidationError) -> dict[str, list[str]]:
    """Group pydantic's errors by top-level field, DRF style: {"email": ["..."]}."""
    fields: dict[str, list[str]] = {}
    for error in err.errors():
        name = str(error["loc"][0]) if error["loc"] else "non_field_errors"
        message = message_for(error)
        if message not in fields.setdefault(name, []):
            fields[name].append(message)
    return fields
