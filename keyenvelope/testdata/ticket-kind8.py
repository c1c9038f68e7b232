#!/usr/bin/env python3
"""Writes ticket-kind8.json: a kind 8 job ticket built from the layout in
doc.go ("Kind 8: job ticket") with the Python standard library, and signed
with the openssl command (Ed25519), so the vector does not come from the Go
code it checks. Run from keyenvelope/testdata: python3 ticket-kind8.py"""
import base64, datetime, json, os, struct, subprocess, tempfile

SCHEDULER_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032 7.1 test 1
WORKER_PRIVATE = "f0c462e8221df720df748866cd8eac9527fda8434d619abf188a9aa4174f6e4b"  # golden-v1 worker key
PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
PKCS8_X25519 = bytes.fromhex("302e020100300506032b656e04220420")


def openssl(args, data=None):
    return subprocess.run(["openssl"] + args, input=data, check=True, capture_output=True).stdout


def der_key(prefix, hexkey, d, name):
    path = os.path.join(d, name + ".der")
    with open(path, "wb") as f:
        f.write(prefix + bytes.fromhex(hexkey))
    return path


def field(s):
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def unix(s):
    return int(datetime.datetime.fromisoformat(s).timestamp())


def main():
    v = {
        "job_id": "job-restore-7",
        "tenant": "tenant-\u00fc",
        "user": "CN=Zo\u00eb O'Brien,OU=R&D,DC=example,DC=com",
        "purpose": "backup",
        "job_purpose": "restore",
        "ekey_id": "53f8ed7db47a1c683556f8baee11a462",
        "issued_at": "2026-11-25T22:00:00+00:00",
        "expires": "2026-11-25T22:30:00+00:00",
        "scheduler_seed": SCHEDULER_SEED,
        "worker_private": WORKER_PRIVATE,
    }
    with tempfile.TemporaryDirectory() as d:
        sched = der_key(PKCS8_ED25519, SCHEDULER_SEED, d, "scheduler")
        worker = der_key(PKCS8_X25519, WORKER_PRIVATE, d, "worker")
        # The raw public key is the last 32 bytes of its SubjectPublicKeyInfo.
        v["scheduler_public"] = openssl(["pkey", "-inform", "DER", "-in", sched, "-pubout", "-outform", "DER"])[-32:].hex()
        worker_pub = openssl(["pkey", "-inform", "DER", "-in", worker, "-pubout", "-outform", "DER"])[-32:]
        v["worker_public"] = worker_pub.hex()
        body = b"KENV" + bytes([1, 8]) + struct.pack(">H", 0x0010)
        for k in ("job_id", "tenant", "user", "purpose", "job_purpose"):
            body += field(v[k])
        body += bytes.fromhex(v["ekey_id"])
        body += struct.pack(">q", unix(v["issued_at"])) + struct.pack(">q", unix(v["expires"]))
        body += worker_pub
        msg = b"liaison/keyenvelope/v1 ticket\x00" + body
        msg_path = os.path.join(d, "msg")
        with open(msg_path, "wb") as f:
            f.write(msg)
        sig = openssl(["pkeyutl", "-sign", "-rawin", "-keyform", "DER", "-inkey", sched, "-in", msg_path])
    assert len(sig) == 64
    ticket = body + sig
    v["ticket_hex"] = ticket.hex()
    v["ticket_text"] = "kenv1." + base64.urlsafe_b64encode(ticket).decode().rstrip("=")
    v["note"] = "kind 8 job ticket built by ticket-kind8.py from the documented layout, signed by openssl"
    with open("ticket-kind8.json", "w") as f:
        json.dump(v, f, indent=2, ensure_ascii=False)
        f.write("\n")


main()
