"""The plain JSON API for people: `POST /v1/classify`, `POST /v1/translate`, `GET /v1/models`."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from onnxpress.runtime.server.inputs import check_beam_size, check_texts
from onnxpress.runtime.server.models import ServedModel
from onnxpress.runtime.server.state import ServerState, state_of, time_left

router = APIRouter(prefix="/v1", tags=["JSON API"])


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 400 naming it, not silently ignored

    texts: list[str] = Field(description="texts to classify", examples=[["Stocks rally as oil prices fall."]])
    model: Optional[str] = Field(None, description="model name; optional when one classifier is served")


class LabelScore(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    model: str
    results: list[LabelScore]


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(description="source sentences", examples=[["Ein Mann fährt Fahrrad."]])
    beam_size: Optional[StrictInt] = Field(None, description="1 is greedy; default: the artifact's")
    return_attention: StrictBool = Field(False, description="include the attention matrix per sentence")
    model: Optional[str] = Field(None, description="model name; optional when one translator is served")


class TranslationOut(BaseModel):
    text: str
    score: float
    tokens: list[str]
    source_tokens: Optional[list[str]] = None
    attention: Optional[list[list[float]]] = Field(None, description="[target tokens][source tokens]")


class TranslateResponse(BaseModel):
    model: str
    translations: list[TranslationOut]


class ModelInfo(BaseModel):
    name: str
    kind: str
    labels: Optional[list[str]] = None


@router.get("/models")
def models(request: Request) -> list[ModelInfo]:
    return [ModelInfo(name=m.name, kind=m.kind, labels=list(m.model.labels) if m.kind == "classifier" else None)
            for m in state_of(request).registry.models.values()]


@router.post("/classify")
async def classify(request: Request, body: ClassifyRequest) -> ClassifyResponse:
    _, served, texts = _begin(request, "classifier", body.model, body.texts)
    probs = await served.run(texts, time_left(request))
    labels = served.model.labels
    results = []
    for row in probs.tolist():  # plain floats: per-row numpy calls cost the event loop more than the rest
        best = max(range(len(row)), key=row.__getitem__)
        results.append(LabelScore.model_construct(label=labels[best], score=row[best],
                                                  probabilities=dict(zip(labels, row))))
    return ClassifyResponse(model=served.name, results=results)


@router.post("/translate")
async def translate(request: Request, body: TranslateRequest) -> TranslateResponse:
    state, served, texts = _begin(request, "translator", body.model, body.texts)
    beam = check_beam_size(body.beam_size, state.settings.limits)
    out = await served.run(texts, time_left(request), beam_size=beam,
                           return_attention=body.return_attention)
    translations = [_translation(t, body.return_attention) for t in out]
    return TranslateResponse(model=served.name, translations=translations)


def _begin(request: Request, kind: str, name: str | None,
           texts: list[str]) -> tuple[ServerState, ServedModel, list[str]]:
    """The state, the model (named on the request for the metrics) and the checked texts."""
    state = state_of(request)
    if name in state.registry.models:
        request.state.model = name  # a served model of the wrong kind still labels its failure
    served = state.registry.only(kind, name)
    request.state.model = served.name
    return state, served, check_texts(texts, state.settings.limits)


def _translation(t: Any, attention: bool) -> TranslationOut:
    return TranslationOut(text=t.text, score=float(t.score), tokens=list(t.tokens),
                          source_tokens=list(t.source_tokens) if attention else None,
                          attention=t.attention.tolist() if attention else None)
