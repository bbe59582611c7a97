"""The base of every recipe section: an unknown key is an error, so a misspelt field never passes silently."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
