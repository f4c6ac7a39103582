"""Dataset routes: /v1/datasets..."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from pydantic import BaseModel, Field

from app.api.deps import ReadKey, SessionDep, SettingsDep, StoreDep, TrainKey
from app.api.openapi import Offset, Task, dataset_formats, enum_of, problems
from app.datasets import ratings, service
from app.db.tables import Dataset
from models import TASKS

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class DatasetOut(BaseModel):
    id: str
    name: str
    task: Task
    format: str = Field(**enum_of(dataset_formats))
    sha256: str
    size_bytes: int
    stats: dict[str, Any]
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    total: int
    limit: int
    offset: int


def dataset_out(d: Dataset) -> DatasetOut:
    return DatasetOut(id=d.id, name=d.name, task=d.task, format=d.format, sha256=d.sha256, size_bytes=d.size_bytes,
                      stats=d.stats or {}, created_at=d.created_at)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut,
             responses={200: {"model": DatasetOut, "description": "these bytes were uploaded before"},
                        **problems(409)})
def upload_dataset(
    _: TrainKey, session: SessionDep, store: StoreDep, settings: SettingsDep, response: Response,
    file: Annotated[UploadFile, File(description="zip/tar/tar.gz archive or single file, per the task's formats")],
    task: Annotated[str, Form(description="the task family", **enum_of(TASKS))],
    format: Annotated[str | None, Form(description="e.g. imagefolder or npz; guessed from the file name if absent",
                                      **enum_of(dataset_formats))]
    = None,
    name: Annotated[str | None, Form(description="a label; defaults to the file name")] = None,
) -> DatasetOut:
    upload = service.check_upload(task, format, name, file.filename or "")
    with store.staged_copy(file.file, settings.max_upload_bytes) as (path, sha256, size):
        row, created = service.find_by_sha(session, sha256, upload), False
        if row is None:
            session.rollback()  # end the read: unpacking and validating below can take a while
            stats = service.materialise(store, settings, upload, path, sha256)
            row, created = service.add(session, upload, sha256, size, stats)
            session.commit()
    response.headers["Location"] = f"/v1/datasets/{row.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return dataset_out(row)


@router.get("", response_model=DatasetPage)
def list_datasets(
    _: ReadKey, session: SessionDep, task: Task | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Offset = 0,
) -> DatasetPage:
    rows, total = service.list_page(session, task, limit, offset)
    return DatasetPage(items=[dataset_out(d) for d in rows], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, _: ReadKey, session: SessionDep) -> DatasetOut:
    return dataset_out(service.get(session, dataset_id))


class RatingOut(BaseModel):
    item: int | str = Field(description="the item's id (a number where it is a plain integer, as /predict answers)")
    title: str | None = Field(description="from the dataset's item file (u.item, movies.csv), when it has one")
    rating: float
    timestamp: int | None = Field(description="seconds since 1970, when the file has them")


class UserRatings(BaseModel):
    dataset_id: str
    user: int | str
    items: list[RatingOut] = Field(description="highest rating first")
    total: int = Field(description="how many ratings the user gave in all")


class UserOut(BaseModel):
    user: int | str
    ratings: int


class UserPage(BaseModel):
    dataset_id: str
    items: list[UserOut] = Field(description="the users with the most ratings first")
    total: int
    limit: int
    offset: int


@router.get("/{dataset_id}/ratings", response_model=UserRatings, responses=problems(413))
def user_ratings(dataset_id: str, _: ReadKey, session: SessionDep, store: StoreDep,
                 user: Annotated[str, Query(min_length=1, max_length=256, description="the user's id in the dataset")],
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> UserRatings:
    """The ratings a user gave in a recommendation dataset (what the model learned from), for a try-it page
    to show beside its recommendations. 422 for a dataset of another family."""
    index = ratings.index_of(store, service.get(session, dataset_id))
    session.close()
    items, total = ratings.ratings_of(index, user, limit)
    return UserRatings(dataset_id=dataset_id, user=ratings.client_id(user), items=items, total=total)


@router.get("/{dataset_id}/users", response_model=UserPage, responses=problems(413))
def dataset_users(dataset_id: str, _: ReadKey, session: SessionDep, store: StoreDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0) -> UserPage:
    """The users of a recommendation dataset with how many ratings each gave, most first."""
    index = ratings.index_of(store, service.get(session, dataset_id))
    session.close()
    items, total = ratings.users_page(index, limit, offset)
    return UserPage(dataset_id=dataset_id, items=items, total=total, limit=limit, offset=offset)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(409))
def delete_dataset(dataset_id: str, _: TrainKey, session: SessionDep, store: StoreDep) -> Response:
    key = service.delete(session, dataset_id)
    session.commit()
    store.remove(key)  # after the commit: a failed commit must leave the files the row points to
    return Response(status_code=status.HTTP_204_NO_CONTENT)
