"""The base every vocabulary model shares: plain JSON with no field it does not declare."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
