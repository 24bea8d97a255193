"""Schemathesis hooks for `nox -s contract` (loaded through SCHEMATHESIS_HOOKS): what
schemathesis needs to send valid tus requests.

- tus sends its pieces as application/offset+octet-stream, raw bytes like
  application/octet-stream, the only one of the two schemathesis knows.
- Two headers are structured text that a JSON Schema describes only in part, so
  docs/openapi.json names a format for each and the generators live here:
  `tus-metadata` (Upload-Metadata: `key base64(UTF-8 value)` pairs with a file name
  that is not blank) and `tus-checksum` (Upload-Checksum: an algorithm and the
  base64 of a digest of its length). Without them nearly every generated value would
  be refused, and the checks on valid requests would test nothing."""

import base64

import schemathesis
from hypothesis import strategies as st

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


def b64(text):
    return base64.b64encode(text.encode()).decode()


# Python's strip() removes every character Rust's trim() does, and more.
names = st.text(min_size=1, max_size=60).filter(lambda s: s.strip())
expiries = st.sampled_from(["never", "1h", "1d", "7d", "30d", ""])


@st.composite
def tus_metadata(draw):
    pairs = [f"filename {b64(draw(names))}"]
    if draw(st.booleans()):
        pairs.append(f"expires {b64(draw(expiries))}")
    if draw(st.booleans()):
        pairs.append(f"filetype {b64(draw(st.text(max_size=30)))}")
    if draw(st.booleans()):
        pairs.append("is_confidential")  # a key may come without a value
    return ",".join(draw(st.permutations(pairs)))


DIGEST_BYTES = {"sha1": 20, "sha256": 32}
tus_checksum = st.sampled_from(sorted(DIGEST_BYTES)).flatmap(
    lambda algorithm: st.binary(min_size=DIGEST_BYTES[algorithm], max_size=DIGEST_BYTES[algorithm]).map(
        lambda digest: f"{algorithm} {base64.b64encode(digest).decode()}"
    )
)

schemathesis.openapi.format("tus-metadata", tus_metadata())
schemathesis.openapi.format("tus-checksum", tus_checksum)
