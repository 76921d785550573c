"""What the user names becomes sources: folders, globs, copies, missing paths."""

from pipelines.ingest.sources import expand


def test_folders_globs_copies_and_missing(tmp_path):
    clips = tmp_path / "clips"
    (clips / "day2").mkdir(parents=True)
    (clips / "a.mp4").write_bytes(b"A" * 5000)
    (clips / "a.mp4.truth.json").write_text("{}")
    (clips / "day2" / "b.MKV").write_bytes(b"B" * 5000)
    (clips / "day2" / "copy-of-a.mp4").write_bytes(b"A" * 5000)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")

    refs, problems = expand([str(clips)])
    assert sorted(r.name for r in refs) == ["a.mp4", "b.MKV"]  # the copy is the same video: listed once

    refs, _ = expand([str(clips / "*")])
    assert [r.name for r in refs] == ["a.mp4"]  # the glob skips the truth file and the folder

    refs, problems = expand([str(notes), str(tmp_path / "nope.mp4"), str(tmp_path / "*.avi"), str(tmp_path / "empty")])
    assert [r.name for r in refs] == ["notes.txt"]  # named directly: taken, so it fails with a reason later
    assert dict(problems) == {str(tmp_path / "nope.mp4"): "no such file or folder",
                              str(tmp_path / "*.avi"): "pattern matches no file",
                              str(tmp_path / "empty"): "no such file or folder"}


def test_source_id_follows_content_not_name(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"same" * 1000)
    (tmp_path / "y.mp4").write_bytes(b"same" * 1000)
    (tmp_path / "z.mp4").write_bytes(b"diff" * 1000)
    (x,), _ = expand([str(tmp_path / "x.mp4")])
    (y,), _ = expand([str(tmp_path / "y.mp4")])
    (z,), _ = expand([str(tmp_path / "z.mp4")])
    assert x.source_id == y.source_id != z.source_id
