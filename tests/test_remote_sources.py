"""Sources that are not local files: ``s3://BUCKET/PREFIX`` listed through a real S3-protocol
server (moto) and decoded over presigned range reads, and ``http(s)://`` files from a server
that answers ranges. No copy is made: the MP4 here keeps its index at the end, as camera files
do, so reading it at all takes ranged reads."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

from http_range import serve_folder
from indexers.clips import cut_source
from indexers.store import SourceInfo
from operators.media import s3
from operators.media.decode import DecodeConfig, DecodedFrame, Decoder, MediaError
from pipelines.ingest.sources import expand



def decoded(uri: str) -> list[tuple[int, np.ndarray]]:
    with Decoder(uri, DecodeConfig(frames_per_second=1.0)) as decoder:
        return [(item.pts_ns, item.image) for item in decoder if isinstance(item, DecodedFrame)]


@pytest.fixture(scope="module")
def archive(s3_store, synth_case):
    """A bucket holding the same camera-like MP4 under two keys, a note, and a file elsewhere."""
    endpoint, client = s3_store
    video, _ = synth_case("mp4")
    client.create_bucket(Bucket="archive")
    client.upload_file(str(video), "archive", "cams/north/monday.mp4")
    client.upload_file(str(video), "archive", "cams/north/copy-of-monday.mp4")
    client.put_object(Bucket="archive", Key="cams/north/notes.txt", Body=b"not a video")
    client.upload_file(str(video), "archive", "other/tuesday.mp4")
    return endpoint, video


def test_an_s3_prefix_lists_its_media_once_each(archive):
    endpoint, _ = archive
    refs, problems = expand(["s3://archive/cams/"], s3_endpoint=endpoint)
    assert problems == []
    # The copy has the same content (ETag and size): one source, found under the first key by name.
    assert [r.uri for r in refs] == ["s3://archive/cams/north/copy-of-monday.mp4"]
    assert refs[0].source_id.startswith("s3-")
    (one,), _ = expand(["s3://archive/other/tuesday.mp4"], s3_endpoint=endpoint)
    assert one.uri == "s3://archive/other/tuesday.mp4" and one.source_id == refs[0].source_id


def test_s3_problems_are_said_by_name(archive):
    endpoint, _ = archive
    refs, problems = expand(["s3://no-such-bucket/x/", "s3://archive/empty/", "s3://"], s3_endpoint=endpoint)
    assert refs == []
    reasons = dict(problems)
    assert "NoSuchBucket" in reasons["s3://no-such-bucket/x/"]
    assert reasons["s3://archive/empty/"] == "no media objects under this prefix"
    assert "not an s3://BUCKET/PREFIX URL" in reasons["s3://"]


def test_an_s3_object_decodes_over_a_presigned_url_as_the_file_does(archive):
    endpoint, video = archive
    url = s3.presign("s3://archive/other/tuesday.mp4", endpoint=endpoint)
    assert "X-Amz-Signature=" in url and url.startswith(endpoint)
    remote, local = decoded(url), decoded(str(video))
    assert len(remote) == len(local) > 5
    for (t_remote, image_remote), (t_local, image_local) in zip(remote, local):
        assert t_remote == t_local and np.array_equal(image_remote, image_local)


def test_an_http_file_is_read_with_range_requests(tmp_path, synth_case):
    video, _ = synth_case("mp4")
    shutil.copy(video, tmp_path / "clip.mp4")
    with serve_folder(tmp_path) as (base, handler):
        remote = decoded(f"{base}/clip.mp4")
        assert handler.ranged >= 1  # the index at the end was reached by a ranged read, not a whole download
        with pytest.raises(MediaError, match="not readable"):
            Decoder(f"{base}/missing.mp4")
    local = decoded(str(video))
    assert [t for t, _ in remote] == [t for t, _ in local]


def test_a_clip_of_an_s3_source_is_cut_from_the_object(archive, tmp_path):
    endpoint, _ = archive
    source = SourceInfo("s3-test", "s3://archive/other/tuesday.mp4", "tuesday.mp4", has_video=True, has_audio=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(s3.ENDPOINT_ENV, endpoint)
        report = cut_source(tmp_path, source, 1_000_000_000, 3_000_000_000, tmp_path / "clip.mp4")
    assert report.video_frames > 0
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        assert abs(float(clip.duration / 1e6) - 2.0) < 0.2
