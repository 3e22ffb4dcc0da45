"""The `atpack` command, run as users run it: in a subprocess."""

from __future__ import annotations

import concurrent.futures
import errno
import importlib.metadata
import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from h100_sample import ENVIRONMENT, Sample
from test_trust_megacache import AUTOTUNE_KEY, BEST_CONFIG, GRAPH_KEY, megacache_pack

import atpack as atpack_lib
from atpack.populate import populate
from atpack.testing.faults import listing
from atpack.testing.s3 import DenyingServer, dummy_aws_environment

REPO = Path(__file__).resolve().parent.parent
MINIMAL = REPO / "spec" / "vectors" / "minimal.atpack"


def atpack(
    *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """`atpack ARGS` in a process of its own, with `env` added to this one's and `unset` taken out."""
    return subprocess.run(
        [sys.executable, "-m", "atpack", *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset},
        cwd=cwd,
        timeout=300,
    )


def refused(result: subprocess.CompletedProcess[str], needle: str, code: int = 1) -> None:
    """The command failed with `code` and said why in one line of stderr, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("atpack: error: "), result.stderr
    assert needle in result.stderr, result.stderr


def test_inspect_prints_environments_and_kinds() -> None:
    result = atpack("inspect", str(MINIMAL))
    assert result.returncode == 0
    assert "atpack format 1.0" in result.stdout
    assert "1  inductor.best_config/1" in result.stdout
    assert "annotation org.atpack.vector = minimal" in result.stdout


def test_inspect_json_is_machine_readable() -> None:
    data = json.loads(atpack("inspect", "--json", str(MINIMAL)).stdout)
    assert data["format"] == [1, 0]
    assert [a["kind"] for a in data["artifacts"]] == ["inductor.best_config/1"]
    assert data["artifacts"][0]["artifact"]["num_warps"] == 16


def test_verify_accepts_a_good_pack() -> None:
    result = atpack("verify", str(MINIMAL))
    assert result.returncode == 0 and result.stdout.startswith("ok: ")


def test_verify_names_the_first_bad_entry_in_one_line(tmp_path: Path) -> None:
    data = bytearray((REPO / "spec" / "vectors" / "h100-subset.atpack").read_bytes())
    data[100] ^= 0xFF  # inside frame 0
    bad = tmp_path / "bad.atpack"
    bad.write_bytes(bytes(data))
    result = atpack("verify", str(bad))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "frame 0" in result.stderr


def test_errors_show_a_traceback_only_when_asked(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.atpack")
    assert "Traceback" not in atpack("inspect", missing).stderr
    assert "Traceback" in atpack("inspect", "--debug", missing).stderr
    assert "Traceback" in atpack("inspect", missing, env={"ATPACK_DEBUG": "1"}).stderr


def test_bad_usage_exits_2() -> None:
    assert atpack("populate").returncode == 2
    assert atpack("frobnicate").returncode == 2


def test_pack_then_populate_from_the_command_line(h100_sample: Sample, tmp_path: Path) -> None:
    pack = str(tmp_path / "out" / "sample.atpack")
    made = atpack(
        "pack",
        "--inductor-dir",
        str(h100_sample.inductor),
        "--triton-dir",
        str(h100_sample.triton),
        "--environment",
        str(ENVIRONMENT),
        "--annotate",
        "org.example.model=mlp",
        "-o",
        pack,
    )
    assert made.returncode == 0, made.stderr
    assert "packed 96 artifacts" in made.stdout

    dirs = ["--inductor-dir", str(tmp_path / "inductor"), "--triton-dir", str(tmp_path / "triton")]
    plain = atpack("populate", pack, *dirs)
    assert plain.returncode == 0 and "96 skipped" in plain.stdout
    assert "device_name: recorded 'NVIDIA H100 80GB HBM3', found none" in plain.stdout

    dry = atpack("populate", pack, *dirs, "--ignore-environment", "--dry-run")
    assert "94 to be written" in dry.stdout and not (tmp_path / "triton").exists()

    full = atpack("populate", pack, *dirs, "--ignore-environment", "--json")
    report = json.loads(full.stdout)
    assert report["ignored_environment"] is True
    assert {o["action"] for o in report["outcomes"]} == {"written", "skipped"}  # host modules need trust
    assert len(list((tmp_path / "triton").rglob("__grp__*.json"))) == 87


def test_env_prints_this_machines_fingerprint() -> None:
    data = json.loads(atpack("env", "--json").stdout)
    assert data["python_abi"] == sys.implementation.cache_tag


@pytest.mark.parametrize("argv", [["--help"], ["pack", "--help"], ["populate", "--help"]])
def test_help_works(argv: list[str]) -> None:
    result = atpack(*argv)
    assert result.returncode == 0 and "usage: atpack" in result.stdout


# =========================================================================== no tracebacks

VECTORS = REPO / "spec" / "vectors"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """The README's `my-model`: a checkpoint folder with two packs beside the weights."""
    folder = tmp_path / "my-model"
    (folder / "atpack").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    shutil.copy(VECTORS / "minimal.atpack", folder / "atpack" / "a.atpack")
    shutil.copy(VECTORS / "h100-subset.atpack", folder / "atpack" / "b.atpack")
    return folder


def test_verify_checks_every_pack_of_a_model_folder(model: Path) -> None:
    result = atpack("verify", str(model))
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["ok", "ok"]
    assert "a.atpack: 1 artifacts" in result.stdout and "b.atpack: 9 artifacts" in result.stdout


def test_merge_takes_a_model_folder_as_its_packs(model: Path, tmp_path: Path) -> None:
    result = atpack("merge", str(model), "-o", str(tmp_path / "all.atpack"), "--policy", "newest")
    assert result.returncode == 0, result.stderr
    assert "merged 2 packs" in result.stdout
    merged = {a.kind for a in atpack_lib.open(tmp_path / "all.atpack").artifacts}
    assert len(atpack_lib.open(tmp_path / "all.atpack").artifacts) == 10 and "triton.kernel/1" in merged


@pytest.mark.parametrize(
    "command",
    [
        ["report", "{model}", "-o", "{out}/r.html"],
        ["diff", "{model}", "{pack}"],
        ["diff", "{pack}", "{model}"],
        ["megacache", "{model}", "-o", "{out}/blob.bin"],
        ["sign", "{model}", "--key", "{out}/k.key"],
        ["push", "{model}", "{out}/store"],
    ],
    ids=lambda c: "-".join(w for w in c if not w.startswith("{")),
)
def test_commands_that_take_one_pack_refuse_a_model_folder_in_one_line(
    command: list[str], model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if command[0] == "sign":
        atpack("keygen", "k", cwd=out)
    before = listing(tmp_path)
    args = [w.format(model=model, out=out, pack=VECTORS / "minimal.atpack") for w in command]
    refused(atpack(*args), f"{model}: a model folder with 2 pack(s) (atpack/a.atpack, atpack/b.atpack)")
    assert listing(tmp_path) == before  # nothing written, nothing changed


@pytest.mark.parametrize(
    "command",
    [
        ["pack", "--inductor-dir", "{inductor}", "--no-triton", "-o", "{folder}"],
        ["merge", "{pack}", "-o", "{folder}"],
        ["megacache", "{megacache}", "-o", "{folder}"],
        ["report", "{pack}", "-o", "{folder}"],
        ["sign", "{pack}", "--key", "{key}", "-o", "{folder}"],
        ["pull", "{store}", "t", "-o", "{folder}", "--local", "{local}"],
    ],
    ids=lambda c: c[0],
)
def test_an_output_naming_a_folder_is_refused_before_any_work(command: list[str], tmp_path: Path) -> None:
    pack = tmp_path / "p.atpack"
    shutil.copy(VECTORS / "h100-subset.atpack", pack)
    assert atpack("keygen", "k", cwd=tmp_path).returncode == 0
    assert atpack("push", str(pack), str(tmp_path / "store"), "-t", "t").returncode == 0
    folder = tmp_path / "existing"
    (folder / "inside").mkdir(parents=True)
    (folder / "inside" / "keep.txt").write_text("kept")
    inductor = tmp_path / "inductor"
    (inductor / "ab").mkdir(parents=True)
    (inductor / "ab" / ("c" * 52 + ".best_config")).write_text('{"XBLOCK": 64, "num_warps": 4, "num_stages": 1}')
    before = listing(tmp_path)
    names = {
        "folder": folder,
        "pack": pack,
        "inductor": inductor,
        "megacache": VECTORS / "megacache-and-host.atpack",
        "key": tmp_path / "k.key",
        "store": tmp_path / "store",
        "local": tmp_path / "local",
    }
    refused(atpack(*[w.format(**names) for w in command]), f"{folder}: a folder; -o names the file to write")
    assert listing(tmp_path) == before


def test_opening_a_folder_or_nothing_is_a_typed_one_line_error(model: Path) -> None:
    with pytest.raises(atpack_lib.IsAFolderError) as folder:
        atpack_lib.open(model)
    assert isinstance(folder.value, IsADirectoryError) and isinstance(folder.value, atpack_lib.StorageError)
    assert str(folder.value) == f"{model}: a folder, not a pack file" and folder.value.errno == errno.EISDIR
    with pytest.raises(FileNotFoundError) as missing:  # what code that never heard of atpack catches
        atpack_lib.open(model / "missing.atpack")
    assert isinstance(missing.value, atpack_lib.NotFoundError) and "\n" not in str(missing.value)
    (model / "empty").mkdir()
    refused(atpack("inspect", str(model / "empty")), "a folder with no pack")


# =========================================================================== storage errors name their cause

CREDENTIALS_HINT = (
    'give them as storage options (--storage-options \'{"key": ..., "secret": ...}\'), in AWS_ACCESS_KEY_ID and '
    "AWS_SECRET_ACCESS_KEY, or in an AWS profile; '{\"anon\": true}' reads a public bucket without them"
)
NO_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def test_missing_credentials_are_named_at_once_with_how_to_give_them(s3: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    endpoint = s3.storage_options["client_kwargs"]["endpoint_url"]
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    store, local, out = s3.url("store"), tmp_path / "local", tmp_path / "out.atpack"
    nothing = f"no credentials found: {CREDENTIALS_HINT}"
    for args, says in [
        (("push", str(VECTORS / "h100-subset.atpack"), store, "-t", "x"), f"{store}: looking up 4 blobs: {nothing}"),
        (("tag", store), f"{store}/tags: listing tags: {nothing}"),
        (("tag", store, "x", "sha256:" + "0" * 64), f"{store}/packs/{'0' * 64}.json.zst: reading its size: {nothing}"),
        (("pull", store, "x", "--local", str(local), "-o", str(out)), f"{store}: reading tag 'x': {nothing}"),
    ]:
        result = atpack(*args, env=env, unset=NO_CREDENTIALS)
        assert (result.returncode, result.stderr) == (1, f"atpack: error: {says}\n"), args
    assert s3.keys() == [] and not local.exists() and not out.exists()
    # tried once: a retry would log why it retries, and the message would say how many attempts it made
    debug = atpack("pull", store, "x", "--local", str(local), "--debug", env=env, unset=NO_CREDENTIALS)
    assert debug.returncode == 1 and nothing in debug.stderr and "; retrying in" not in debug.stderr
    assert "gave up after" not in debug.stderr


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("InvalidAccessKeyId", "the store does not know the access key (InvalidAccessKeyId): check the credentials"),
        (
            "SignatureDoesNotMatch",
            "the secret key does not match the access key (SignatureDoesNotMatch): check the credentials",
        ),
        ("AccessDenied", "access denied (AccessDenied): these credentials may not do this"),
    ],
)
def test_credentials_the_store_refuses_are_named_and_asked_once(code: str, says: str, tmp_path: Path) -> None:
    out, local = tmp_path / "out.atpack", tmp_path / "local"
    out.write_bytes(b"the pack pulled before")
    record = f"s3://bucket/store/packs/{'0' * 64}.json.zst"
    with DenyingServer(code) as server, dummy_aws_environment():
        options = ("--storage-options", json.dumps({"client_kwargs": {"endpoint_url": server.url}}))
        pulled = atpack("pull", "s3://bucket/store", "v1", "-o", str(out), "--local", str(local), *options)
        asked = server.requests  # neither atpack nor botocore asks again, nor whether there is a store at all
        tagged = atpack("tag", "s3://bucket/store", "v2", "sha256:" + "0" * 64, *options)  # a HEAD: a status alone
        assert (asked, server.requests) == (1, 2)
    assert (pulled.returncode, pulled.stderr) == (1, f"atpack: error: s3://bucket/store: reading tag 'v1': {says}\n")
    assert (tagged.returncode, tagged.stderr) == (
        1,
        f"atpack: error: {record}: reading its size: access denied (HTTP 403): the store refused these credentials\n",
    )
    assert out.read_bytes() == b"the pack pulled before" and not local.exists()


def _closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_named_as_such_not_as_a_timeout(tmp_path: Path) -> None:
    where = f"127.0.0.1:{_closed_port()}"
    out, local = tmp_path / "deploy" / "out.atpack", tmp_path / "local"
    out.parent.mkdir()
    out.write_bytes(b"the pack pulled before")
    pull = ("pull", "s3://bucket/store", "v1", "-o", str(out), "--local", str(local), "--storage-options")
    plain = {"client_kwargs": {"endpoint_url": f"http://{where}"}}
    commands = [
        # botocore retries a refused connection itself (up to 15 s a call), atpack's deadline cuts the last try short
        (*pull, json.dumps(plain), "--timeout", "16"),
        (*pull, json.dumps({**plain, "config_kwargs": {"retries": {"total_max_attempts": 1}}})),  # atpack's 5 tries
        ("inspect", f"http://{where}/x.atpack"),  # aiohttp alone
    ]
    before = listing(tmp_path)
    with dummy_aws_environment(), concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda args: atpack(*args), commands))
    refused_at = re.escape(f"connection refused: no server listens at {where}")
    deadline, attempts, http = (r.stderr for r in results)
    assert all(r.returncode == 1 for r in results), [r.stderr for r in results]
    tried = r"\(gave up after \d attempts? in [\d.]+ s(: the 16 s deadline reached)?\)"
    assert re.fullmatch(rf"atpack: error: s3://bucket/store: reading tag 'v1': {refused_at} {tried}\n", deadline)
    tried = r"\(gave up after 5 attempts in [\d.]+ s\)"
    assert re.fullmatch(rf"atpack: error: s3://bucket/store: reading tag 'v1': {refused_at} {tried}\n", attempts)
    assert re.fullmatch(
        rf"atpack: error: http://{re.escape(where)}/x\.atpack: checking whether it is a folder: {refused_at} {tried}\n",
        http,
    )
    assert listing(tmp_path) == before  # the pack pulled before as it was, no local store made


def test_a_name_that_does_not_resolve_is_named_as_such(tmp_path: Path) -> None:
    result = atpack("inspect", "http://atpack-nowhere.invalid:9000/x.atpack")  # .invalid never resolves (RFC 6761)
    refused(result, "http://atpack-nowhere.invalid:9000/x.atpack: checking whether it is a folder: ")
    assert "cannot resolve host atpack-nowhere.invalid: " in result.stderr and "timed out" not in result.stderr


# =========================================================================== no silent empties


def test_pack_refuses_a_named_cache_folder_that_does_not_exist(h100_sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "p.atpack"
    result = atpack(
        "pack", "--inductor-dir", str(h100_sample.inductor), "--triton-dir", str(tmp_path / "typo"), "-o", str(out)
    )
    refused(result, f"{tmp_path / 'typo'}: no such folder (named as the Triton cache folder)")
    assert not out.exists()


def test_pack_writes_no_empty_pack_unless_asked_and_names_the_folders_it_read(tmp_path: Path) -> None:
    nowhere = {
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "no-inductor"),
        "TRITON_CACHE_DIR": str(tmp_path / "no-triton"),
    }
    out = tmp_path / "p.atpack"
    result = atpack("pack", "-o", str(out), env=nowhere)
    refused(result, f"nothing to pack: no cache folder exists (looked for {tmp_path / 'no-inductor'}, ")
    assert "--allow-empty" in result.stderr and not out.exists()

    (tmp_path / "no-inductor").mkdir()  # a folder, with nothing in it
    refused(atpack("pack", "-o", str(out), env=nowhere), f"nothing to pack: no artifact in {tmp_path / 'no-inductor'}")
    assert not out.exists()

    allowed = atpack("pack", "-o", str(out), "--allow-empty", env=nowhere)
    assert allowed.returncode == 0, allowed.stderr
    assert f"packed 0 artifacts into {out}" in allowed.stdout
    assert f"read {tmp_path / 'no-inductor'} (inductor)" in allowed.stdout
    assert f"no folder at {tmp_path / 'no-triton'} (triton)" in allowed.stdout
    assert atpack_lib.open(out).artifacts == ()


def test_tag_and_pull_say_when_there_is_no_store(tmp_path: Path) -> None:
    store, local = tmp_path / "no-store", tmp_path / "local"
    refused(atpack("tag", str(store)), f"no store at {store}")
    refused(atpack("tag", str(store), "v1", "sha256:" + "0" * 64), f"no store at {store}")
    refused(atpack("pull", str(store), "v1", "--local", str(local)), f"no store at {store}")
    assert not store.exists() and not local.exists()
    store.mkdir()  # a store with no tag yet: an empty list, and a word on stderr
    empty = atpack("tag", str(store))
    assert empty.returncode == 0 and empty.stdout == "" and "holds no tag" in empty.stderr
    refused(atpack("pull", str(store), "v1", "--local", str(local)), "no tag 'v1'")


def test_push_and_pull_say_what_they_sent_and_what_the_store_had(tmp_path: Path) -> None:
    subset, merged = VECTORS / "h100-subset.atpack", tmp_path / "merged.atpack"  # 4 blobs, and those 4 and 4 more
    assert atpack("merge", str(subset), str(VECTORS / "megacache-and-host.atpack"), "-o", str(merged)).returncode == 0
    store, local, out = tmp_path / "store", tmp_path / "local", tmp_path / "pulled.atpack"
    digest = {pack: atpack_lib.open(pack).digest for pack in (subset, merged)}

    def said(*args: str) -> str:
        result = atpack(*args)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return result.stdout

    def held(folder: Path) -> tuple[int, int]:
        """How many blobs a store holds, and their bytes (as sent and fetched)."""
        frames = [f.stat().st_size for f in (folder / "blobs").glob("*/*")]
        return len(frames), sum(frames)

    assert not store.exists()
    first = said("push", str(subset), str(store))
    assert held(store)[0] == 4
    assert first == f"pushed {digest[subset]}: all 4 blobs sent ({held(store)[1]:,} bytes)\n"
    before = held(store)[1]
    more = said("push", str(merged), str(store), "-t", "m")
    assert held(store)[0] == 8
    sent = held(store)[1] - before
    assert more == f"pushed {digest[merged]}: 4 of 8 blobs sent ({sent:,} bytes); the store had the other 4, tagged m\n"
    assert said("push", str(merged), str(store)) == f"pushed {digest[merged]}: no blob sent: the store had all 8\n"
    empty = atpack_lib.open(VECTORS / "empty.atpack").digest
    assert (
        said("push", str(VECTORS / "empty.atpack"), str(store)) == f"pushed {empty}: no blob sent: the pack has none\n"
    )

    pulled = said("pull", str(store), digest[subset], "-o", str(out), "--local", str(local))
    assert held(local) == (4, before) and atpack_lib.open(out).digest == digest[subset]
    assert pulled == f"pulled {digest[subset]} into {out}: all 4 blobs fetched ({before:,} bytes)\n"
    pulled = said("pull", str(store), "m", "-o", str(out), "--local", str(local))
    assert held(local) == held(store) and atpack_lib.open(out).digest == digest[merged]
    assert pulled == (
        f"pulled {digest[merged]} into {out}: 4 of 8 blobs fetched ({sent:,} bytes); the local store had the other 4\n"
    )
    pulled = said("pull", str(store), "m", "-o", str(out), "--local", str(local))
    assert pulled == f"pulled {digest[merged]} into {out}: no blob fetched: the local store had all 8\n"


def test_a_failed_pull_leaves_nothing_at_its_output_and_populate_then_names_the_missing_pack(tmp_path: Path) -> None:
    """The README's startup step, `atpack pull STORE TAG -o FILE` then `atpack populate FILE`."""
    store, local, deploy = tmp_path / "store", tmp_path / "local", tmp_path / "deploy"
    deploy.mkdir()
    out = deploy / "mlp-h100-pulled.atpack"
    assert atpack("push", str(VECTORS / "h100-subset.atpack"), str(store), "-t", "mlp-h100").returncode == 0
    caches = ["--inductor-dir", str(tmp_path / "inductor"), "--triton-dir", str(tmp_path / "triton")]
    missing = (
        f"no pack at {out}: no such file (check that the command meant to write it, such as atpack pull -o, succeeded)"
    )

    failed = atpack("pull", str(store), "mlp-h200", "-o", str(out), "--local", str(local))  # a tag nobody pushed
    assert (failed.returncode, failed.stderr) == (1, f"atpack: error: {store}: no tag 'mlp-h200'\n")
    assert listing(deploy) == {} and not local.exists()
    for command in (["populate", str(out), *caches], ["inspect", str(out)], ["verify", str(out)]):
        result = atpack(*command)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", f"atpack: error: {missing}\n"), command
    assert not (tmp_path / "inductor").exists() and not (tmp_path / "triton").exists()
    refused(atpack("populate", str(deploy / "no-folder" / "p.atpack")), f"no folder {deploy / 'no-folder'} (check")

    # a pull that fails while it writes (a blob damaged in the local store, and in the store it would be
    # fetched again from) publishes nothing either; damaged locally only, it is fetched again (test_store.py)
    assert atpack("pull", str(store), "mlp-h100", "-o", str(out), "--local", str(local)).returncode == 0
    before = out.read_bytes()
    blob = next((local / "blobs").glob("*/*"))
    for copy in (blob, store / "blobs" / blob.parent.name / blob.name):
        frame = bytearray(copy.read_bytes())
        frame[-1] ^= 0xFF  # the frame's checksum
        copy.write_bytes(bytes(frame))
    damaged = atpack("pull", str(store), "mlp-h100", "-o", str(out), "--local", str(local))
    refused(damaged, f"{store}: blob sha256:{blob.name}")
    assert listing(deploy) == {out.name: ("file", before)}  # the pack pulled before, whole; no temporary file


# =========================================================================== flags and exit codes


def test_debug_and_verbose_work_before_and_after_the_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.atpack")
    for args in (["--debug", "inspect", missing], ["inspect", missing, "--debug"]):
        assert "Traceback" in atpack(*args).stderr, args
    for args in (["-v", "inspect", str(MINIMAL)], ["inspect", "-v", str(MINIMAL)], ["inspect", str(MINIMAL)]):
        assert ("KIND" in atpack(*args).stdout) == ("-v" in args), args
    usage = atpack("--help").stdout
    assert all(flag in usage for flag in ("--debug", "-v, --verbose", "--version", "exit codes:"))


def test_version_is_the_package_version() -> None:
    result = atpack("--version")
    assert result.returncode == 0 and result.stdout == f"atpack {atpack_lib.__version__}\n"
    assert importlib.metadata.version("atpack") == atpack_lib.__version__


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--level", "99"], "argument --level: 99: zstd levels are 1..22"),
        (["--level", "fast"], "argument --level: not a number: 'fast'"),
        (["--annotate", "foo"], "argument --annotate: 'foo': expected KEY=VALUE"),
        (["--annotate", "Model=x"], "argument --annotate: 'Model': a key is reverse-DNS"),
    ],
)
def test_bad_pack_options_are_usage_errors(option: list[str], says: str, h100_sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "p.atpack"
    result = atpack("pack", "--inductor-dir", str(h100_sample.inductor), *option, "-o", str(out))
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.fixture(scope="module")
def sample_pack(h100_sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Sample(h100_sample_root).pack(tmp_path_factory.mktemp("pack") / "sample.atpack")


def test_a_verbose_dry_run_says_to_be_written_for_each_artifact(sample_pack: Path, tmp_path: Path) -> None:
    dirs = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    result = atpack("populate", str(sample_pack), *dirs, "--ignore-environment", "--dry-run", "-v")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("    ")]
    assert len(lines) == 96
    assert sum(1 for w in lines if w[:3] == ["to", "be", "written"]) == 94
    assert not [w for w in lines if w[0] == "written"]
    assert not (tmp_path / "i").exists() and not (tmp_path / "t").exists()


def test_require_applied_exits_3_when_nothing_applies_here(sample_pack: Path, tmp_path: Path) -> None:
    dirs = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    plain = atpack("populate", str(sample_pack), *dirs)
    assert plain.returncode == 0 and "96 skipped" in plain.stdout  # this CPU machine is not the H100
    last = plain.stdout.splitlines()[-1]  # said plainly, in the last line: the field most artifacts differ in
    assert re.fullmatch(r"nothing applied here: \d+ of 96 artifacts were made elsewhere \(\w+: recorded .+", last)
    assert "capture a pack" in last
    strict = atpack("populate", str(sample_pack), *dirs, "--require-applied")
    assert strict.returncode == 3 and "96 skipped" in strict.stdout
    assert strict.stderr == f"atpack: {last} (--require-applied)\n"
    report = populate(str(sample_pack), inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"))
    assert report.ok and report.applied == 0  # ok means "nothing failed"; applied says what the caches hold
    applied = atpack("populate", str(sample_pack), *dirs, "--ignore-environment", "--require-applied")
    assert applied.returncode == 0, applied.stderr
    again = atpack("populate", str(sample_pack), *dirs, "--ignore-environment", "--require-applied")
    assert again.returncode == 0 and "94 present" in again.stdout  # already there counts as applied


def test_merge_says_when_it_drops_signatures(tmp_path: Path) -> None:
    signed, other = tmp_path / "signed.atpack", tmp_path / "other.atpack"
    shutil.copy(VECTORS / "h100-subset.atpack", signed)
    shutil.copy(VECTORS / "minimal.atpack", other)
    assert atpack("keygen", "k", cwd=tmp_path).returncode == 0
    assert atpack("sign", str(signed), "--key", str(tmp_path / "k.key")).returncode == 0
    merged = tmp_path / "merged.atpack"
    result = atpack("merge", str(signed), str(other), "-o", str(merged))
    assert result.returncode == 0, result.stderr
    assert "dropped the signatures of 1 inputs: re-sign the merged pack" in result.stdout
    assert not [k for k in atpack_lib.open(merged).manifest.annotations if k.startswith("io.atpack.signature.")]
    refused(atpack("verify", str(merged), "--key", str(tmp_path / "k.pub")), f"{merged}: not signed")
    quiet = atpack("merge", str(other), str(VECTORS / "h100-subset.atpack"), "-o", str(tmp_path / "m2.atpack"))
    assert quiet.returncode == 0 and "signature" not in quiet.stdout


def test_megacache_of_a_pack_without_entries_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "blob.bin"
    refused(atpack("megacache", str(MINIMAL), "-o", str(out)), "no Megacache entry in this pack (1 artifacts")
    assert not out.exists()
    # the vector's graph key is one character longer than torch's: no blob carries it to torch's loader
    vector = str(VECTORS / "megacache-and-host.atpack")
    refused(atpack("megacache", vector, "-o", str(out), "--trust-pickles"), "not the shape torch gives inductor keys")
    graphs = tmp_path / "graphs.atpack"
    graphs.write_bytes(megacache_pack(("autotune", AUTOTUNE_KEY, BEST_CONFIG), ("inductor", GRAPH_KEY, b"a pickle")))
    refused(
        atpack("megacache", str(graphs), "-o", str(out)), "a pickle, unpickled when loaded; pass trust_pickles=True"
    )
    assert not out.exists()
    assert atpack("megacache", str(graphs), "-o", str(out), "--trust-pickles").returncode == 0
    assert out.stat().st_size > 12


def test_a_truncated_pack_is_called_truncated(tmp_path: Path) -> None:
    data = (VECTORS / "h100-subset.atpack").read_bytes()
    for size in (len(data) - 1, len(data) // 2, 40):
        cut = tmp_path / f"cut{size}.atpack"
        cut.write_bytes(data[:size])
        refused(
            atpack("inspect", str(cut)),
            "truncated, or followed by other bytes: it starts as an atpack file but does not end as one "
            f"({size:,} bytes",
        )
    other = tmp_path / "notes.txt"
    other.write_bytes(b"x" * 500)
    refused(atpack("verify", str(other)), "not an atpack file (500 bytes, no footer magic at the end)")


def test_populating_a_damaged_pack_writes_what_verifies_and_reports_every_artifact(
    sample_pack: Path, tmp_path: Path
) -> None:
    with atpack_lib.open(sample_pack) as pack:
        damaged = len(pack._frames) // 2
        frame = pack._frames[damaged]
        held = {d for d, entry in pack._blobs.items() if entry.frame == damaged}
        hit = {a.key for a in pack.artifacts if isinstance(a, atpack_lib.TritonKernel) and held & set(a.blob_refs())}
    n = len(hit)  # the kernels with a file in the damaged frame
    data = bytearray(sample_pack.read_bytes())
    data[frame.offset + frame.length // 2] ^= 0xFF
    bad = tmp_path / "bad.atpack"
    bad.write_bytes(bytes(data))
    dirs = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    result = atpack("populate", str(bad), *dirs, "--ignore-environment")
    assert result.returncode == 1 and result.stderr.count("\n") == 1  # the failure said on stderr, in one line
    assert n and re.match(
        rf"atpack: error: {n} artifact\(s\) failed, the first: triton\.kernel/1 \w+: .*sha256", result.stderr
    )
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith(f"96 artifacts: {94 - n} written, 2 skipped, {n} failed"), result.stdout
    assert "does not match its sha256" in result.stdout and f"failed {n} triton.kernel/1" in result.stdout
    # the kernels whose files the damaged frame held are not made visible; the others are, whole
    assert len(list((tmp_path / "t").rglob("__grp__*.json"))) == 87 - n
    again = populate(
        str(sample_pack), inductor_dir=str(tmp_path / "i"), triton_dir=str(tmp_path / "t"), ignore_environment=True
    )
    assert again.ok and again.count("written") == n and again.count("present") == 94 - n


def test_diff_exit_code_says_whether_packs_differ() -> None:
    same = atpack("diff", "--exit-code", str(MINIMAL), str(MINIMAL))
    assert same.returncode == 0 and "0 added, 0 removed, 0 changed" in same.stdout
    differ = atpack("diff", str(MINIMAL), str(VECTORS / "h100-subset.atpack"), "--exit-code")
    assert differ.returncode == 1 and differ.stderr == "" and "added" in differ.stdout
    assert atpack("diff", str(MINIMAL), str(VECTORS / "h100-subset.atpack")).returncode == 0
    assert atpack("diff", "--json", "--exit-code", str(MINIMAL), str(VECTORS / "h100-subset.atpack")).returncode == 1


def test_the_progress_bar_on_a_terminal_follows_the_blobs(sample_pack: Path, tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    dirs = ["--inductor-dir", str(tmp_path / "i"), "--triton-dir", str(tmp_path / "t")]
    with subprocess.Popen(
        [sys.executable, "-m", "atpack", "populate", str(sample_pack), *dirs, "--ignore-environment"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        cwd=REPO,
    ) as process:
        os.close(secondary)
        shown = b""
        while chunk := _read(primary):
            shown += chunk
        assert process.wait(timeout=300) == 0
    os.close(primary)
    # on one line, redrawn: from 0 of the blobs to write (the two host modules are not: untrusted) to all of them
    steps = [line.decode() for line in shown.split(b"\r") if line.strip()]
    blobs = atpack_lib.open(sample_pack).blob_count - 2
    assert steps[0] == f"reading blobs [{' ' * 30}] 0/{blobs}"
    assert steps[-1] == f"reading blobs [{'#' * 30}] {blobs}/{blobs}" and shown.endswith(b"\r\n")
    assert len(steps) == blobs + 1


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end closed
        return b""
