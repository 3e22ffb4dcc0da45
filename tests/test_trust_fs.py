"""Cache folders that someone else can change: atpack writes and reads inside them, and only
inside them, whatever that someone does and whenever they do it.

Every test builds a *site*: an Inductor and a Triton cache folder, and a folder outside them
holding a file of its own and a "private key". The attacker (the test) plants symlinks and
FIFOs, swaps folders for symlinks between the moment atpack checks a folder and the moment it
writes into it, or races atpack from a thread. Then: nothing outside the cache folders changed
(the full `listing` before and after), no byte of the secret is in a pack (every blob and every
artifact read back), and every refusal is a one-line `AtpackError` of the class named.

Writes (`CacheDir`) go through folder descriptors: a folder swapped for a symlink before atpack
opens it is refused; one swapped after it was opened is no longer reachable by its name, and
the writes land in the folder atpack opened, which was inside. Collection (`atpack.walk`)
follows no symlink and opens no file that is not a regular one.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import resource
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import atpack
from atpack.artifacts import KernelFile, TritonHostModule
from atpack.collect import CollectReport, pack_caches
from atpack.digest import digest_bytes
from atpack.errors import AtpackError, UnsafeContentError
from atpack.files import CacheDir
from atpack.populate import PopulateReport, populate
from atpack.testing.faults import listing
from atpack.testing.packs import (
    INDUCTOR_ENV,
    TRITON_ENV,
    alnum,
    best_config,
    gemm_timings,
    hex64,
    kernel_perf,
    open_bytes,
    pack_of,
)
from atpack.testing.packs import triton_autotune as autotune_artifact
from atpack.testing.packs import triton_kernel as kernel_artifact

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-the-victims-key\n"
OTHER_UID = 54321  # a user that is not the one running the tests


class Site:
    """Two cache folders, a folder outside them with a private key, and the packs aside."""

    def __init__(self, root: Path) -> None:
        self.root = root / "site"
        self.inductor = self.root / "caches" / "inductor"
        self.triton = self.root / "caches" / "triton"
        self.outside = self.root / "outside"
        self.packs = root / "packs"
        for folder in (self.inductor, self.triton, self.outside, self.packs):
            folder.mkdir(parents=True)
        (self.outside / "id_ed25519").write_bytes(SECRET)
        (self.outside / "victim.txt").write_text("must stay as it is")

    def snapshot(self) -> dict[str, Any]:
        return listing(self.root)

    def outside_snapshot(self) -> dict[str, Any]:
        return listing(self.outside)

    def populate(self, pack: bytes, **options: Any) -> PopulateReport:
        path = self.packs / "pack.atpack"
        path.write_bytes(pack)
        return populate(
            path, inductor_dir=str(self.inductor), triton_dir=str(self.triton), ignore_environment=True, **options
        )

    def pack_caches(self, **options: Any) -> tuple[CollectReport, Path]:
        url = self.packs / "collected.atpack"
        options = {"inductor_dir": str(self.inductor), "triton_dir": str(self.triton), **options}
        return pack_caches(url, environment=TRITON_ENV, **options), url


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def one_line(error: BaseException) -> str:
    assert isinstance(error, AtpackError) and "\n" not in str(error), repr(error)
    return str(error)


def failures(report: PopulateReport) -> list[tuple[str, str]]:
    return [(o.error, o.detail) for o in report.outcomes if o.action == "failed"]


# =========================================================================== writes: a folder swapped for a symlink


HOST_MODULE = TritonHostModule(
    env=TRITON_ENV.digest, cache_key="M" * 52, files=(KernelFile("cuda_utils.so", digest_bytes(b"elf"), 3),)
)


def kernel(n: int) -> tuple[atpack.TritonKernel, tuple[bytes, ...]]:
    """A compiled kernel (metadata naming it, and a binary) and its blobs."""
    meta = b'{"name": "kernel_%d"}' % n
    return kernel_artifact(TRITON_ENV.digest, n, [(f"kernel_{n}.json", meta), (f"kernel_{n}.cubin", b"elf")]), (
        meta,
        b"elf",
    )


KERNEL, KERNEL_BLOBS = kernel(0)
GEMM = gemm_timings(INDUCTOR_ENV.digest, 0)

# what each kind writes, and the folder that gets swapped (relative to its cache folder)
TARGETS: dict[str, tuple[bytes, str, str, dict[str, Any]]] = {
    "a .best_config shard": (pack_of(best_config(INDUCTOR_ENV.digest, 0)), "inductor", "", {}),
    "a .kernel_perf shard": (pack_of(kernel_perf(INDUCTOR_ENV.digest, 0)), "inductor", "", {}),
    "the GEMM timing folder": (pack_of(GEMM), "inductor", "cache", {}),
    "a Triton autotune folder": (pack_of(autotune_artifact(TRITON_ENV.digest, 0)), "triton", "", {}),
    "a Triton kernel folder": (pack_of(KERNEL, blobs=KERNEL_BLOBS), "triton", KERNEL.cache_key, {}),
    "a Triton host module folder": (
        pack_of(HOST_MODULE, blobs=(b"elf",)),
        "triton",
        HOST_MODULE.cache_key,
        {"trust_pickles": True},
    ),
}


def target_folder(site: Site, case: str) -> Path:
    data, cache, folder, _ = TARGETS[case]
    root = site.inductor if cache == "inductor" else site.triton
    if folder:
        return root / folder
    (artifact,) = open_bytes(data).artifacts
    return root / artifact.key.split("/")[0]


@contextlib.contextmanager
def swapped_before_the_first_write(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> Iterator[None]:
    """Run `swap` once, after populate planned (checked every folder, compared every file) and
    right before its first write: the window a path-based writer cannot close."""
    real_write = CacheDir.write
    swapped: list[bool] = []

    def write(self: CacheDir, path: str, data: bytes | memoryview, **options: bool) -> None:
        if not swapped:
            swapped.append(True)
            swap()
        real_write(self, path, data, **options)

    monkeypatch.setattr(CacheDir, "write", write)
    yield
    assert swapped, "populate wrote nothing: the swap never happened"


@pytest.mark.parametrize("case", list(TARGETS))
def test_a_folder_planted_as_a_symlink_after_planning_is_refused_when_written(
    site: Site, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # the folder does not exist when populate plans; the attacker makes it a symlink to the
    # outside before populate writes: the write refuses it, the artifact fails
    data, _, _, options = TARGETS[case]
    folder = target_folder(site, case)
    outside = site.outside_snapshot()
    with swapped_before_the_first_write(monkeypatch, lambda: folder.symlink_to(site.outside)):
        report = site.populate(data, **options)
    assert site.outside_snapshot() == outside
    assert [error for error, _ in failures(report)] == ["UnsafeContentError"], report.format(verbose=True)
    assert "it is a symlink" in failures(report)[0][1]


@pytest.mark.parametrize("case", list(TARGETS))
def test_a_folder_swapped_for_a_symlink_after_atpack_opened_it_keeps_receiving_the_writes_inside(
    site: Site, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # the folder exists when populate plans (and opens it); the attacker moves it aside (inside
    # the cache) and puts a symlink to the outside in its place: the writes go on into the folder
    # populate opened, never through the symlink
    data, _, _, options = TARGETS[case]
    folder = target_folder(site, case)
    folder.mkdir()
    (folder / "unrelated").write_text("someone else's")
    moved = folder.with_name(folder.name + "-moved")

    def swap() -> None:
        folder.rename(moved)
        folder.symlink_to(site.outside)

    outside = site.outside_snapshot()
    with swapped_before_the_first_write(monkeypatch, swap):
        report = site.populate(data, **options)
    assert site.outside_snapshot() == outside
    assert report.ok and report.count("written") + report.count("merged") == 1, report.format(verbose=True)
    assert len(list(moved.iterdir())) > 1  # what populate wrote is in the folder it opened


def _locked(root: CacheDir) -> None:
    with root.locked("ab/id_ed25519.lock"):
        pass


OPERATIONS: dict[str, Callable[[CacheDir], object]] = {
    "write": lambda root: root.write(root.path("ab/id_ed25519"), b"overwritten"),
    "read": lambda root: root.read(root.path("ab/id_ed25519")),
    "state": lambda root: root.state(root.path("ab/id_ed25519"), data=SECRET),
    "locked": _locked,
    "link into it": lambda root: root.link("cd/mine", "ab/id_ed25519"),
    "link out of it": lambda root: root.link("ab/id_ed25519", "cd/stolen"),
    "path": lambda root: root.path("ab/id_ed25519"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("closed", [False, True], ids=["still open", "closed since"])
def test_a_folder_swapped_for_a_symlink_since_it_was_checked_is_never_gone_through(
    site: Site, operation: str, closed: bool
) -> None:
    # checked (and opened) while it was a folder, then moved aside and replaced by a symlink to
    # the outside: an operation either goes on in the folder it opened, or, once that folder
    # was closed (as the least recently used ones are), refuses the symlink
    (site.triton / "ab").mkdir()
    (site.triton / "cd").mkdir()
    (site.triton / "cd" / "mine").write_bytes(b"mine")
    root = CacheDir(str(site.triton))
    assert root.state(root.path("ab/id_ed25519"), data=SECRET) == "absent"
    if closed:
        root.close()
    (site.triton / "ab").rename(site.triton / "ab-moved")
    (site.triton / "ab").symlink_to(site.outside)
    before = site.snapshot()
    try:
        result = OPERATIONS[operation](root)
    except AtpackError as e:
        result = e
    finally:
        root.close()
    assert site.outside_snapshot() == {k[len("outside/") :]: v for k, v in before.items() if k.startswith("outside/")}
    assert result not in (SECRET, "same")  # the key was neither read nor compared
    if closed or operation == "link out of it":  # (the folder it opened has no such file)
        assert isinstance(result, AtpackError), result
        one_line(result)
    if closed:
        assert isinstance(result, UnsafeContentError) and "it is a symlink" in str(result)
        assert site.snapshot() == before
    else:
        changed = {k for k in set(before) | set(site.snapshot()) if before.get(k) != site.snapshot().get(k)}
        assert all(k.startswith("caches/triton/ab-moved/") for k in changed), changed


def test_populate_raced_by_a_thread_swapping_folders_for_symlinks_never_writes_outside(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a real race: while populate runs again and again (on threads too), another thread keeps
    # replacing the cache's folders by symlinks to the outside and putting them back
    configs = [best_config(INDUCTOR_ENV.digest, n) for n in range(40)]
    made = [kernel(n) for n in range(40)]
    kernels = [k for k, _ in made]
    data = pack_of(*configs, *kernels, GEMM, blobs=tuple(sorted({b for _, blobs in made for b in blobs})))
    folders = sorted({site.inductor / c.path.split("/")[0] for c in configs} | {site.inductor / "cache"})
    folders += [site.triton / k.cache_key for k in kernels]
    monkeypatch.setattr(atpack.files.Writes, "PROBE", 8)
    monkeypatch.setattr(atpack.files.Writes, "SLOW", 0.0)  # after 8 files, writes go to threads
    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)
    sys.setswitchinterval(1e-5)
    stop = threading.Event()
    swaps = [0]

    def attacker() -> None:
        while not stop.is_set():
            for folder in folders:
                held = folder.with_name(folder.name + "-held")
                with contextlib.suppress(OSError):
                    folder.rename(held)
                with contextlib.suppress(OSError):
                    folder.symlink_to(site.outside)
                    swaps[0] += 1
                time.sleep(0)
                with contextlib.suppress(OSError):
                    folder.unlink()
                with contextlib.suppress(OSError):
                    held.rename(folder)

    outside = site.outside_snapshot()
    errors: set[str] = set()
    removed: list[str] = []
    written = 0
    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    try:
        for _ in range(25):
            report = site.populate(data)
            errors |= {error for error, _ in failures(report)}
            removed += [d for e, d in failures(report) if e == "StorageError"]
            written += report.count("written") + report.count("merged")
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(0.005)
    assert site.outside_snapshot() == outside
    # a symlink is refused; besides, putting a folder back can replace the empty one populate
    # just made in its place: writing into that one then finds it removed
    assert errors <= {"UnsafeContentError", "StorageError"}, errors
    assert all(d.endswith("cannot write: No such file or directory") for d in removed), removed
    assert swaps[0] > 100 and written > 0 and "UnsafeContentError" in errors  # the race did happen, both ways


def test_a_read_sees_a_file_another_writer_made_after_planning_found_its_folder_missing(site: Site) -> None:
    # planning takes a missing folder to stay missing (a fresh cache has thousands of files to
    # plan); a read under a lock (the GEMM timing merge) must see what another process made since
    root = CacheDir(str(site.inductor))
    path = root.path("cache/timings")
    assert root.state(path, data=b"mine") == "absent"
    (site.inductor / "cache").mkdir()
    (site.inductor / "cache" / "timings").write_bytes(b"theirs")
    assert root.read(path) == b"theirs"
    root.close()


def test_populate_into_more_folders_than_it_may_keep_open_closes_the_ones_it_does_not_use(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a process allowed few descriptors, a populate into nine Triton folders (eight devices' and
    # Triton's own) of 200 kernel folders each: atpack keeps only some folders open, none after
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("counting open descriptors needs /proc")
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    monkeypatch.setenv("TRITON_HOME", str(site.root / "home"))
    made = [kernel(n) for n in range(200)]
    path = site.packs / "p.atpack"
    path.write_bytes(pack_of(*(k for k, _ in made), blobs=tuple(sorted({b for _, blobs in made for b in blobs}))))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = len(os.listdir(fds))
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 120, hard))
    try:
        report = populate(path, inductor_dir=str(site.inductor), devices=range(8), ignore_environment=True)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert report.ok and report.count("written") == 200, report.format()
    assert len(report.triton_dirs) == 9 and all(len(os.listdir(d)) == 200 for d in report.triton_dirs)
    assert _open_under(site.root) == []  # none left (the count of the process's others may change meanwhile)


def _open_under(root: Path) -> list[str]:
    """What this process holds open inside `root`."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith(str(root)):
                found.append(target)
    return found


def test_a_populate_that_turns_the_replay_on_leaves_no_descriptor_open(tmp_path: Path) -> None:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("counting open descriptors needs /proc")
    pack = tmp_path / "p.atpack"
    with atpack.create(pack) as writer:
        writer.add(best_config(writer.add_environment(INDUCTOR_ENV), 0))
    before = set(os.listdir(fds))
    folders = {"inductor_dir": str(tmp_path / "i"), "triton_dir": str(tmp_path / "t")}
    report = populate(pack, ignore_environment=True, **folders)
    assert report.count("written") == 1 and (tmp_path / "i" / "atpack-replay.json").is_file()
    assert set(os.listdir(fds)) <= before


def test_the_folders_of_a_cache_dir_dropped_unclosed_are_closed_by_the_next_one(site: Site) -> None:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("counting open descriptors needs /proc")
    before = set(os.listdir(fds))
    root = CacheDir(str(site.triton))
    for n in range(10):
        root.write(root.path(f"folder{n}/file"), b"x")
    opened = set(os.listdir(fds)) - before
    assert len(opened) == 11  # the cache folder and its ten folders
    del root
    gc.collect()
    other = CacheDir(str(site.inductor))
    other.write(other.path("ab/file"), b"x")
    other.close()
    # (folders other tests left unclosed in this process may be closed here too)
    assert not opened & set(os.listdir(fds))


# =========================================================================== the cache folder itself


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="giving a folder to another user (os.chown) needs root; CI runs as root"
)


@needs_root
def test_a_cache_folder_owned_by_another_user_is_refused_before_anything_is_written(site: Site) -> None:
    # another user made /tmp/torchinductor_<you> before you did: what torch later loads from it
    # is theirs. populate writes nothing there; collection packs nothing from it
    os.chown(site.inductor, OTHER_UID, OTHER_UID)
    (site.inductor / "ab").mkdir()
    (site.inductor / "ab" / f"{hex64('planted')}.best_config").write_text(
        '{"XBLOCK": 1, "num_warps": 1, "num_stages": 1}'
    )
    before = site.snapshot()
    report = site.populate(pack_of(best_config(INDUCTOR_ENV.digest, 0), kernel_perf(INDUCTOR_ENV.digest, 0), GEMM))
    assert len(failures(report)) == 3 and {error for error, _ in failures(report)} == {"UnsafeContentError"}
    detail = failures(report)[0][1]
    assert f"{site.inductor}: owned by uid {OTHER_UID}" in detail and "TORCHINDUCTOR_CACHE_DIR" in detail
    with pytest.raises(UnsafeContentError, match=f"owned by uid {OTHER_UID}") as raised:
        site.pack_caches()
    one_line(raised.value)
    assert site.snapshot() == before  # no pack either


@needs_root
def test_a_cache_folder_symlink_planted_by_another_user_is_refused(site: Site, tmp_path: Path) -> None:
    # in a shared /tmp, another user makes /tmp/torchinductor_<you> a symlink to a folder of
    # yours: atpack neither writes into it nor packs what it holds
    yours = tmp_path / "home" / ".ssh"
    yours.mkdir(parents=True)
    (yours / "id_ed25519").write_bytes(SECRET)
    link = tmp_path / "torchinductor_you"
    link.symlink_to(yours, target_is_directory=True)
    os.lchown(link, OTHER_UID, OTHER_UID)
    theirs = listing(yours)
    pack = site.packs / "p.atpack"
    pack.write_bytes(pack_of(best_config(INDUCTOR_ENV.digest, 0)))
    report = populate(pack, inductor_dir=str(link), triton_dir=str(site.triton), ignore_environment=True)
    assert failures(report) == [
        (
            "UnsafeContentError",
            f"refusing cache folder {link}: a symlink owned by uid {OTHER_UID}, another user;"
            " use a folder you own (set TORCHINDUCTOR_CACHE_DIR or TRITON_CACHE_DIR)",
        )
    ]
    with pytest.raises(UnsafeContentError, match="a symlink owned by uid") as raised:
        site.pack_caches(triton_dir=str(link))
    one_line(raised.value)
    assert listing(yours) == theirs
    assert not (site.packs / "collected.atpack").exists()


def test_a_cache_folder_that_is_your_own_symlink_is_written_and_collected_through(site: Site, tmp_path: Path) -> None:
    # TORCHINDUCTOR_CACHE_DIR=/data/cache with /data a link to a bigger disk: the user's choice
    real = tmp_path / "bigger-disk" / "cache"
    real.mkdir(parents=True)
    link = tmp_path / "cache-link"
    link.symlink_to(real, target_is_directory=True)
    artifact = best_config(INDUCTOR_ENV.digest, 0)
    path = site.packs / "p.atpack"
    path.write_bytes(pack_of(artifact))
    report = populate(path, inductor_dir=str(link), triton_dir=str(site.triton), ignore_environment=True)
    assert report.ok and (real / artifact.path).is_file()
    collected, _ = site.pack_caches(inductor_dir=str(link))
    assert collected.kinds["inductor.best_config/1"] == 1 and not collected.skipped


def test_a_cache_folder_atpack_creates_belongs_to_you(site: Site) -> None:
    root = site.root / "caches" / "new" / "inductor"
    path = site.packs / "p.atpack"
    path.write_bytes(pack_of(best_config(INDUCTOR_ENV.digest, 0)))
    report = populate(path, inductor_dir=str(root), triton_dir=str(site.triton), ignore_environment=True)
    assert report.ok and root.stat().st_uid == os.geteuid()


# =========================================================================== collection


def pack_texts(url: Path) -> list[bytes]:
    """Every blob of the pack and every artifact, as read back."""
    with atpack.open(url) as pack:
        blobs = [data for _, data in pack.read_blobs(pack.blob_digests)]
        return blobs + [msgspec.json.encode(a) for a in pack.artifacts]


def assert_secret_not_packed(url: Path) -> None:
    texts = pack_texts(url)
    assert texts, "nothing was packed at all"
    assert not any(SECRET in text or b"the-victims-key" in text for text in texts)


def kernel_folder(triton: Path, key: str, name: str, files: dict[str, bytes | None]) -> Path:
    """A Triton kernel folder `key` whose group file lists `files` (None: made by the test)."""
    folder = triton / key
    folder.mkdir(parents=True, exist_ok=True)
    for child, data in files.items():
        if data is not None:
            (folder / child).write_bytes(data)
    (folder / f"__grp__{name}.json").write_text(json.dumps({"child_paths": {c: str(folder / c) for c in files}}))
    return folder


def good_kernel(site: Site) -> None:
    kernel_folder(site.triton, alnum("good", 52), "good", {"good.json": b'{"name": "good"}', "good.cubin": b"elf"})


# a file whose content would parse as a result: following the link would pack it
SECRET_CONFIG = json.dumps({"XBLOCK": 1, "num_warps": 1, "num_stages": 1, "token": SECRET.decode()}).encode()


def test_a_best_config_symlinked_to_a_private_file_is_skipped_not_packed(site: Site) -> None:
    (site.outside / "config.json").write_bytes(SECRET_CONFIG)
    shard = site.inductor / "ab"
    shard.mkdir()
    (shard / f"{hex64('a')}.best_config").symlink_to(site.outside / "config.json")
    (shard / f"{hex64('b')}.best_config").write_text('{"XBLOCK": 2, "num_warps": 2, "num_stages": 1}')
    report, url = site.pack_caches()
    assert report.kinds["inductor.best_config/1"] == 1
    assert [(s.path, s.reason) for s in report.skipped] == [
        (
            str(shard / f"{hex64('a')}.best_config"),
            f"ab/{hex64('a')}.best_config: a symlink, not followed out of the cache folder",
        )
    ]
    assert_secret_not_packed(url)
    assert b"token" not in b"".join(pack_texts(url))


def test_a_shard_folder_symlinked_to_a_private_folder_is_skipped_not_packed(site: Site) -> None:
    private = site.outside / "private"
    private.mkdir()
    (private / f"{hex64('a')}.best_config").write_bytes(SECRET_CONFIG)
    (site.inductor / "ab").symlink_to(private, target_is_directory=True)
    (site.inductor / "cache").symlink_to(private, target_is_directory=True)
    good_kernel(site)
    report, url = site.pack_caches()
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {
        str(site.inductor / "ab"): "ab: a symlink, not followed out of the cache folder",
        str(site.inductor / "cache"): "cache: a symlink, not followed out of the cache folder",
    }
    assert_secret_not_packed(url)


def test_a_kernel_file_symlinked_to_a_private_key_skips_that_kernel_and_packs_no_byte_of_the_key(site: Site) -> None:
    key = alnum("stolen", 52)
    folder = kernel_folder(site.triton, key, "k", {"k.json": b'{"name": "k"}', "k.cubin": None})
    (folder / "k.cubin").symlink_to(site.outside / "id_ed25519")
    good_kernel(site)
    report, url = site.pack_caches()
    assert report.kinds["triton.kernel/1"] == 1
    assert [(s.path, s.reason) for s in report.skipped] == [
        (str(folder / "__grp__k.json"), f"{key}/k.cubin: a symlink, not followed out of the cache folder")
    ]
    assert_secret_not_packed(url)


def test_a_kernel_folder_symlinked_to_a_private_folder_is_skipped_not_packed(site: Site) -> None:
    # a folder that looks like a kernel folder or a host module folder (only .so files) outside
    for name, files in {
        "looks-like-a-kernel": {"k.json": SECRET},
        "looks-like-a-host-module": {"lib.so": SECRET},
    }.items():
        private = site.outside / name
        if "kernel" in name:
            kernel_folder(site.outside, name, "k", files)  # type: ignore[arg-type]
        else:
            private.mkdir()
            (private / "lib.so").write_bytes(SECRET)
        (site.triton / alnum(name, 52)).symlink_to(private, target_is_directory=True)
    good_kernel(site)
    report, url = site.pack_caches()
    assert report.kinds == {"triton.kernel/1": 1}
    assert sorted(s.reason for s in report.skipped) == sorted(
        f"{alnum(name, 52)}: a symlink, not followed out of the cache folder"
        for name in ("looks-like-a-kernel", "looks-like-a-host-module")
    )
    assert_secret_not_packed(url)


def collected_within(site: Site, seconds: float, fifos: list[Path]) -> CollectReport:
    """`pack_caches`, which must finish within `seconds`; a reader blocked on a FIFO is released
    afterwards (by opening it for writing) so that the test process can end."""
    result: list[CollectReport | BaseException] = []

    def run() -> None:
        try:
            result.append(site.pack_caches(allow_empty=True)[0])  # what is skipped may be all there is
        except BaseException as e:  # reported below
            result.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"pack_caches still waits on a FIFO after {seconds} s")
    assert isinstance(result[0], CollectReport), result
    return result[0]


def test_fifos_in_cache_folders_are_skipped_without_waiting_for_a_writer(site: Site) -> None:
    shard = site.inductor / "ab"
    shard.mkdir()
    best = shard / f"{hex64('fifo')}.best_config"
    key = alnum("fifo", 52)
    folder = kernel_folder(site.triton, key, "k", {"k.json": b'{"name": "k"}', "k.cubin": None})
    group, autotune, cubin = (
        folder / "__grp__k.json",
        site.triton / alnum("tune", 52) / "f.autotune.json",
        folder / "k.cubin",
    )
    autotune.parent.mkdir()
    group.unlink()
    fifos = [best, group, autotune, cubin]
    for fifo in fifos:
        os.mkfifo(fifo)
    good_kernel(site)
    report = collected_within(site, 30, fifos)
    assert report.kinds == {"triton.kernel/1": 1}
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {
        str(best): f"ab/{best.name}: a FIFO, not a regular file",
        str(group): f"{key}/__grp__k.json: a FIFO, not a regular file",
        str(autotune): f"{autotune.parent.name}/f.autotune.json: a FIFO, not a regular file",
    }


def test_a_kernel_whose_listed_file_is_a_fifo_is_skipped_without_waiting(site: Site) -> None:
    key = alnum("fifo-child", 52)
    folder = kernel_folder(site.triton, key, "k", {"k.json": b'{"name": "k"}', "k.cubin": None})
    os.mkfifo(folder / "k.cubin")
    report = collected_within(site, 30, [folder / "k.cubin"])
    assert [(s.path, s.reason) for s in report.skipped] == [
        (str(folder / "__grp__k.json"), f"{key}/k.cubin: a FIFO, not a regular file")
    ]


def test_a_cache_file_larger_than_the_collection_limit_is_skipped_unread(site: Site) -> None:
    from atpack.walk import MAX_FILE

    key = alnum("huge", 52)
    folder = kernel_folder(site.triton, key, "k", {"k.json": b'{"name": "k"}', "k.cubin": b""})
    os.truncate(folder / "k.cubin", MAX_FILE + 1)  # sparse: nothing is allocated, nothing read
    report, _ = site.pack_caches(allow_empty=True)
    assert [(s.path, s.reason) for s in report.skipped] == [
        (
            str(folder / "__grp__k.json"),
            f"{key}/k.cubin: {MAX_FILE + 1:,} bytes, more than the {MAX_FILE:,} collection reads",
        )
    ]


# =========================================================================== hard links


@pytest.fixture
def kernels(site: Site) -> Iterator[CacheDir]:
    root = CacheDir(str(site.triton))
    root.write(root.path("A/k.cubin"), b"elf")
    yield root
    root.close()


def test_link_makes_one_file_of_two_names_inside_the_cache(site: Site, kernels: CacheDir) -> None:
    assert kernels.link("A/k.cubin", "B/k.cubin") == "linked"
    a, b = (site.triton / "A" / "k.cubin").stat(), (site.triton / "B" / "k.cubin").stat()
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert kernels.link("A/k.cubin", "B/k.cubin") == "same"


def test_link_never_replaces_a_different_file(site: Site, kernels: CacheDir) -> None:
    (site.triton / "B").mkdir()
    (site.triton / "B" / "k.cubin").write_bytes(b"theirs")
    (site.triton / "C").mkdir()
    (site.triton / "C" / "k.cubin").write_bytes(b"elf")  # same content, another file
    before = site.snapshot()
    assert kernels.link("A/k.cubin", "B/k.cubin") == "different"
    assert kernels.link("A/k.cubin", "C/k.cubin") == "same"
    assert site.snapshot() == before


def test_link_refuses_a_target_folder_that_is_a_symlink(site: Site, kernels: CacheDir) -> None:
    (site.triton / "B").symlink_to(site.outside, target_is_directory=True)
    before = site.snapshot()
    with pytest.raises(UnsafeContentError, match="it is a symlink") as raised:
        kernels.link("A/k.cubin", "B/stolen.cubin")
    one_line(raised.value)
    assert site.snapshot() == before


def test_link_refuses_a_source_that_is_a_symlink(site: Site, kernels: CacheDir) -> None:
    (site.triton / "A" / "key.cubin").symlink_to(site.outside / "id_ed25519")
    before = site.snapshot()
    with pytest.raises(UnsafeContentError, match="it is a symlink") as raised:
        kernels.link("A/key.cubin", "B/key.cubin")
    one_line(raised.value)
    assert {k: v for k, v in site.snapshot().items() if k != "caches/triton/B"} == before
    assert not (site.triton / "B" / "key.cubin").exists()


def test_link_copies_where_the_filesystem_cannot_link(
    site: Site, kernels: CacheDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", cross_device)
    assert kernels.link("A/k.cubin", "B/k.cubin") == "copied"
    a, b = site.triton / "A" / "k.cubin", site.triton / "B" / "k.cubin"
    assert b.read_bytes() == b"elf" and a.stat().st_ino != b.stat().st_ino
    assert sorted(os.listdir(site.triton / "B")) == ["k.cubin"]  # written whole: no temporary left
    assert kernels.link("A/k.cubin", "B/k.cubin") == "same"
    (site.triton / "C").mkdir()
    (site.triton / "C" / "k.cubin").write_bytes(b"theirs")
    assert kernels.link("A/k.cubin", "C/k.cubin") == "different"
    assert (site.triton / "C" / "k.cubin").read_bytes() == b"theirs"
    assert stat.S_ISREG(b.lstat().st_mode)


SPECIAL_PACKS = {"a FIFO": "fifo", "a character device": "/dev/zero"}


@pytest.mark.parametrize("special", SPECIAL_PACKS.values(), ids=SPECIAL_PACKS.keys())
@pytest.mark.parametrize("command", ["inspect", "verify", "populate"])
def test_a_special_file_given_as_a_pack_is_refused_without_waiting_or_reading_on(
    tmp_path: Path, special: str, command: str
) -> None:
    """Opening a FIFO for reading waits for a writer, and /dev/zero never ends: a pack is a
    regular file, checked before its first byte is read. `populate` meets it in a model folder."""
    pack = tmp_path / "model" / "atpack" / "weights.atpack"
    pack.parent.mkdir(parents=True)
    if special == "fifo":
        os.mkfifo(pack)
    else:
        pack.symlink_to(special)
    target = tmp_path / "model" if command == "populate" else pack
    dirs = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")] if command == "populate" else []
    result = subprocess.run(
        [sys.executable, "-m", "atpack", command, str(target), *dirs], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "not a regular file" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "i").exists() and not (tmp_path / "t").exists()
