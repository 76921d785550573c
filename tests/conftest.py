"""Shared test setup. The offline profile must load every model without network: with these set,
a model that tries to fetch anything from the Hugging Face hub fails instead of downloading."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

pytest_plugins = ["media_fixtures", "redis_fixture", "serve_fixture", "s3_fixture", "ray_head_fixture"]
