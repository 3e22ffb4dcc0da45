"""Test tooling for atpack packs and the storage they live on, shipped with atpack.

For people who write tests against atpack packs or implement the pack format elsewhere, and for
people who test their own storage setups (an S3-compatible store, a shared folder) with atpack:

* `atpack.testing.packs`: sample artifacts and environments, packs written in memory, and pack
  surgery: a valid pack's header, index and footer taken apart and put back together with
  exactly one chosen defect, every other digest and offset fixed up;
* `atpack.testing.s3`: a real S3-protocol server on 127.0.0.1 (moto in server mode) behind a
  byte-counting proxy, a fault-injecting proxy (resets, 500s and 503s, stalls, cut and short
  bodies), a server that never answers and one that refuses every credential;
* `atpack.testing.faults`: packs read and written through that fault-injecting proxy with what
  happened counted, a large store's content made cheaply, and processes that fail: SIGKILL at a
  chosen file-changing call (a tripwire) or after a delay, listings of folders and the checks
  run on them after a crash, and processes released together to race.

Plain functions and classes, no pytest fixtures. ``import atpack`` never imports this package,
and importing it needs nothing beyond atpack's own dependencies; starting the S3 server needs
moto's server (``pip install 'moto[server]'``: the repository's ``test`` dependency group has
it), and its clients need s3fs (``atpack[s3]``) or boto3.
"""
