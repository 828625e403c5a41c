#!/usr/bin/env python3
"""Regenerate the RFC 4475 and RFC 5118 torture-test corpus from the RFC texts.

Usage (from this directory):

    python3 extract.py RFC4475.txt RFC5118.txt           # write the files
    python3 extract.py --check RFC4475.txt RFC5118.txt   # compare, write nothing

RFC4475.txt and RFC5118.txt are the RFC Editor's plain-text files
(https://www.rfc-editor.org/rfc/rfc4475.txt, .../rfc5118.txt). Each RFC's
Appendix A holds a base64-encoded, gzip-compressed tar archive of its test
messages between "-- BEGIN MESSAGE ARCHIVE --" and "-- END MESSAGE ARCHIVE --".
The data lines are the lines in that block that hold one whitespace-free
token of base64 characters; page headers and footers hold spaces and are
skipped (the rule of the RFCs' own Appendix A). gzip's CRC-32 and length
check proves the decoded archive bit-exact.

Output:
    rfc4475/<name>.dat          the RFC 4475 archive's files, unchanged
    rfc5118-archive/<name>      the RFC 5118 archive's files, unchanged
    rfc5118/<name>.dat          the same messages made sendable (see wire())
Then every file is checked against SHA256SUMS.
"""
import base64
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
B64 = re.compile(rb"^[A-Za-z0-9+/=]+$")
BEGIN = b"-- BEGIN MESSAGE ARCHIVE --"
END = b"-- END MESSAGE ARCHIVE --"


def archive(text):
    """Returns {name: bytes} for the regular files of the RFC's archive."""
    data, inside = [], False
    for line in text.splitlines():
        s = line.strip()
        if s == BEGIN:  # a whole-line marker; the Perl listing has it inside a regex
            inside, data = True, []
            continue
        if s == END:
            inside = False
            continue
        if inside and B64.match(s):
            data.append(s)
    tgz = base64.b64decode(b"".join(data), validate=True)
    tar = gzip.decompress(tgz)  # raises on a CRC or length mismatch
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            name = os.path.basename(m.name)
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", name):
                raise SystemExit("extract.py: unexpected name in archive: %r" % m.name)
            files[name] = tf.extractfile(m).read()
    return files


def wire(msg):
    """RFC 5118's archived files end lines with a bare LF, two of them have no
    empty line after the header section, and the three with a body have a
    Content-Length that matches neither the LF nor the CRLF body. SIP needs
    CRLF (RFC 3261 §7) and a Content-Length that is the body's length
    (RFC 3261 §18.3, §20.14). wire() makes exactly those three repairs and
    returns the message and the list of repairs made."""
    if b"\r" in msg:
        raise SystemExit("extract.py: RFC 5118 file already holds CR; the archive changed")
    done = ["LF -> CRLF"]
    lines = msg.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        blank = lines.index(b"")
    except ValueError:
        blank = len(lines)
        lines.append(b"")
        done.append("empty line added after the header section")
    head, body = lines[:blank], lines[blank + 1:]
    body_bytes = b"".join(l + b"\r\n" for l in body)
    for i, h in enumerate(head):
        m = re.match(rb"(?i)(content-length|l)([ \t]*:[ \t]*)([0-9]+)$", h)
        if m and int(m.group(3)) != len(body_bytes):
            head[i] = m.group(1) + m.group(2) + str(len(body_bytes)).encode()
            done.append("Content-Length %s -> %d" % (m.group(3).decode(), len(body_bytes)))
    out = b"".join(l + b"\r\n" for l in head) + b"\r\n" + body_bytes
    return out, done


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) != 2:
        raise SystemExit(__doc__)
    out = {}
    for name, b in archive(open(args[0], "rb").read()).items():
        out["rfc4475/" + name] = b
    for name, b in archive(open(args[1], "rb").read()).items():
        out["rfc5118-archive/" + name] = b
        w, done = wire(b)
        out["rfc5118/" + name + ".dat"] = w
        print("rfc5118/%s.dat: %s" % (name, "; ".join(done)))
    bad = 0
    for path in sorted(out):
        full = os.path.join(HERE, path)
        if check:
            have = open(full, "rb").read() if os.path.exists(full) else None
            if have != out[path]:
                print("differs: " + path)
                bad += 1
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(out[path])
    sums = {}
    for line in open(os.path.join(HERE, "SHA256SUMS")):
        digest, path = line.split(None, 1)
        sums[path.strip()] = digest
    for path in sorted(set(sums) | set(out)):
        got = hashlib.sha256(out[path]).hexdigest() if path in out else None
        if got != sums.get(path):
            print("SHA256SUMS mismatch: %s" % path)
            bad += 1
    print("%d files, %d problems" % (len(out), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
