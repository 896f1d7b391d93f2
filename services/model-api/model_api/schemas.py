"""Request and response bodies. Validation here is what turns a client's mistake into a 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from model_api import data


def _number(low: float, high: float, description: str) -> Any:
    # strict: a JSON number (int or float) only, never "3" or true; finite only, never NaN or Infinity.
    return Annotated[float, Field(ge=low, le=high, strict=True, allow_inf_nan=False, description=description)]


def _whole_float_to_int(value: Any) -> Any:
    # 3.0 is how Python's json writes a float that holds 3: accept it as 3; 2.5, "3" and true stay errors.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Home = Literal[data.HOME]  # type: ignore[valid-type]
Marital = Literal[data.MARITAL]  # type: ignore[valid-type]
Records = Literal[data.RECORDS]  # type: ignore[valid-type]
Job = Literal[data.JOB]  # type: ignore[valid-type]
Location = Literal[data.LOCATIONS]  # type: ignore[valid-type]


class CreditApplicant(BaseModel):
    """One loan application, with the columns of the classic credit-scoring data."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [data.COURSE_APPLICANT]})

    seniority: _number(0, 60, "years with the current employer")
    home: Home
    time: _number(1, 120, "requested term of the loan, months")
    age: _number(18, 100, "age of the applicant, years")
    marital: Marital
    records: Records = Field(description="whether the applicant has records of past defaults")
    job: Job
    expenses: _number(0, 10_000, "monthly expenses")
    income: _number(0, 100_000, "monthly income")
    assets: _number(0, 100_000_000, "value of the applicant's assets")
    debt: _number(0, 100_000_000, "outstanding debt")
    amount: _number(0, 10_000_000, "amount requested")
    price: _number(0, 100_000_000, "price of the good being bought")


class CreditDecision(BaseModel):
    default_probability: float = Field(description="estimated probability that the applicant defaults")
    decision: Literal["APPROVED", "MAYBE", "DECLINED"]

    @classmethod
    def of(cls, probability: float, approve_below: float, decline_from: float) -> CreditDecision:
        """The answer for a default probability under these thresholds (the API's and the BentoML service's)."""
        if probability >= decline_from:
            decision = "DECLINED"
        elif probability >= approve_below:
            decision = "MAYBE"
        else:
            decision = "APPROVED"
        return cls(default_probability=round(probability, 4), decision=decision)


class House(BaseModel):
    """A house to price."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [data.COURSE_HOUSE]})

    sqft: _number(500, 10_000, "living area, square feet")
    bedrooms: Annotated[
        int, BeforeValidator(_whole_float_to_int), Field(ge=1, le=10, strict=True, description="number of bedrooms")
    ]
    location: Location


class HousePrice(BaseModel):
    price: float = Field(description="estimated price, dollars")


class ValidationProblem(BaseModel):
    field: str = Field(description="the offending field, dotted; 'body' for the body as a whole")
    reason: str
    type: str


class ErrorBody(BaseModel):
    """What every 4xx from this API carries: a sentence, and for 422 one entry per problem."""

    message: str
    detail: list[ValidationProblem] | str
