"""Fixtures shared by the whole suite."""

import pytest
from h100_sample import h100_sample, h100_sample_root  # noqa: F401  (the real H100 sample, see h100_sample.py)

# ---------------------------------------------------------------------------------------
# S3: a real S3-protocol server for the storage tests (see atpack/testing/s3.py).
#
#   s3_server  (session)  moto in server mode on 127.0.0.1 behind a byte-counting proxy,
#                         with dummy AWS credentials in the environment (no AWS, no network)
#   s3         (function) a fresh, empty bucket on it, counters reset; emptied afterwards
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    from atpack.testing.s3 import S3Server, dummy_aws_environment

    with dummy_aws_environment(), S3Server() as server:
        yield server


@pytest.fixture
def s3(s3_server):
    bucket = s3_server.new_bucket()
    s3_server.reset_counters()
    yield bucket
    bucket.delete()
