"""Placeholder: filled in by the issue-13 work in progress."""

from fastapi import APIRouter

router = APIRouter(prefix="/console")
